"""A user's second factors and recovery codes (SQL). Connections are in the app's context.

Rows of ``mfa_factors`` (TOTP, passkeys, the recovery-code set) and
``recovery_codes``. Every read and write names the user, so a factor id of
another user (or, being in another schema, another app) matches nothing.
One-time use is one guarded UPDATE each: a TOTP step is accepted only if it is
later than the last accepted one, a recovery code only while unused, so of two
concurrent uses exactly one succeeds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

_COLUMNS = (
    "id, user_id, kind, name, created_at, confirmed_at, last_used_at, secret_sealed, last_step"
)


@dataclass(frozen=True, slots=True)
class Factor:
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    name: str
    created_at: datetime
    confirmed_at: datetime | None
    last_used_at: datetime | None
    secret_sealed: str | None
    last_step: int | None

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


def _factor(row: asyncpg.Record | None) -> Factor | None:
    return None if row is None else Factor(*row.values())


async def create_totp(
    conn: asyncpg.Connection,
    *,
    factor_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    secret_sealed: str,
) -> Factor:
    """A new, unconfirmed TOTP factor; the user's other unconfirmed ones go (one
    enrolment at a time, and abandoned seeds do not pile up)."""
    await conn.execute(
        "DELETE FROM mfa_factors WHERE user_id = $1 AND kind = 'totp' AND confirmed_at IS NULL",
        user_id,
    )
    row = await conn.fetchrow(
        "INSERT INTO mfa_factors (id, user_id, kind, name, secret_sealed)"
        f" VALUES ($1, $2, 'totp', $3, $4) RETURNING {_COLUMNS}",
        factor_id,
        user_id,
        name,
        secret_sealed,
    )
    factor = _factor(row)
    assert factor is not None
    return factor


async def get(
    conn: asyncpg.Connection, user_id: uuid.UUID, factor_id: uuid.UUID, *, lock: bool = False
) -> Factor | None:
    lock_sql = " FOR UPDATE" if lock else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM mfa_factors WHERE id = $1 AND user_id = $2{lock_sql}",
        factor_id,
        user_id,
    )
    return _factor(row)


async def of_user(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, kind: str | None = None
) -> list[Factor]:
    """Every factor of the user (confirmed or not), oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM mfa_factors WHERE user_id = $1"
        " AND ($2::text IS NULL OR kind = $2) ORDER BY created_at, id",
        user_id,
        kind,
    )
    return [f for f in map(_factor, rows) if f is not None]


async def use_totp_step(
    conn: asyncpg.Connection, factor_id: uuid.UUID, step: int, *, confirm: bool = False
) -> bool:
    """Accept time step ``step`` once (RFC 6238 section 5.2: no second use of a code).

    ``confirm``: the enrolment's first code, which also activates the factor.
    Concurrent calls with one step: the row lock makes the second re-read the
    first's ``last_step``, so exactly one returns True.
    """
    value = await conn.fetchval(
        "UPDATE mfa_factors SET last_step = $2, last_used_at = now(),"
        " confirmed_at = CASE WHEN $3 THEN coalesce(confirmed_at, now()) ELSE confirmed_at END"
        " WHERE id = $1 AND kind = 'totp' AND (last_step IS NULL OR last_step < $2)"
        " AND (confirmed_at IS NOT NULL) <> $3 RETURNING id",
        factor_id,
        step,
        confirm,
    )
    return value is not None


async def rename(
    conn: asyncpg.Connection, user_id: uuid.UUID, factor_id: uuid.UUID, name: str
) -> Factor | None:
    row = await conn.fetchrow(
        f"UPDATE mfa_factors SET name = $3 WHERE id = $1 AND user_id = $2 RETURNING {_COLUMNS}",
        factor_id,
        user_id,
        name,
    )
    return _factor(row)


async def delete(conn: asyncpg.Connection, user_id: uuid.UUID, factor_id: uuid.UUID) -> bool:
    value = await conn.fetchval(
        "DELETE FROM mfa_factors WHERE id = $1 AND user_id = $2 RETURNING id", factor_id, user_id
    )
    return value is not None


async def lock_user_factors(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[Factor]:
    """Every factor of the user, locked: two removals at once cannot both think
    the other factor remains."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM mfa_factors WHERE user_id = $1 ORDER BY id FOR UPDATE", user_id
    )
    return [f for f in map(_factor, rows) if f is not None]


async def replace_recovery_codes(
    conn: asyncpg.Connection, user_id: uuid.UUID, code_hashes: Sequence[bytes]
) -> uuid.UUID:
    """A new set of recovery codes; the old set (and every code in it) is gone."""
    await conn.execute(
        "DELETE FROM mfa_factors WHERE user_id = $1 AND kind = 'recovery_codes'", user_id
    )
    factor_id = await conn.fetchval(
        "INSERT INTO mfa_factors (user_id, kind, name, confirmed_at)"
        " VALUES ($1, 'recovery_codes', 'Recovery codes', now()) RETURNING id",
        user_id,
    )
    await conn.execute(
        "INSERT INTO recovery_codes (factor_id, code_hash) SELECT $1, h FROM unnest($2::bytea[]) h",
        factor_id,
        list(code_hashes),
    )
    assert isinstance(factor_id, uuid.UUID)
    return factor_id


async def use_recovery_code(
    conn: asyncpg.Connection, user_id: uuid.UUID, code_hash: bytes
) -> int | None:
    """Mark one unused code of the user used; the number left, or None if none matched."""
    used = await conn.fetchval(
        "UPDATE recovery_codes r SET used_at = now() FROM mfa_factors f"
        " WHERE f.id = r.factor_id AND f.user_id = $1 AND f.kind = 'recovery_codes'"
        " AND r.code_hash = $2 AND r.used_at IS NULL RETURNING r.factor_id",
        user_id,
        code_hash,
    )
    if used is None:
        return None
    await conn.execute("UPDATE mfa_factors SET last_used_at = now() WHERE id = $1", used)
    left = await conn.fetchval(
        "SELECT count(*) FROM recovery_codes WHERE factor_id = $1 AND used_at IS NULL", used
    )
    return int(left or 0)


async def recovery_codes_left(conn: asyncpg.Connection, factor_id: uuid.UUID) -> int:
    value = await conn.fetchval(
        "SELECT count(*) FROM recovery_codes WHERE factor_id = $1 AND used_at IS NULL", factor_id
    )
    return int(value or 0)
