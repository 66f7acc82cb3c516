"""An app's users as the admin API lists and changes them (issue 15).

Repository functions (connection first, the app's context). Lists are keyset
pages (:mod:`oneauth.admin.pagination`): by ``(created_at, id)``, or by the
normalized address when searching by an address prefix (an index range on
``email_normalized COLLATE "C"``, template 0016).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from oneauth.db.savepoint import savepoint

__all__ = ["COLUMNS", "by_id", "page_by_created", "page_by_email"]

COLUMNS = (
    "id, email, email_normalized, email_verified, status, password_hash IS NOT NULL"
    " AS has_password, created_at, updated_at, last_login_at"
)

_LISTED = "status <> 'deleted' AND ($1::text IS NULL OR status = $1)"
# Named so that a test can check their plans (an index scan from the cursor, no sort).
PAGE_FIRST = f"SELECT {COLUMNS} FROM users WHERE {_LISTED} ORDER BY created_at, id LIMIT $2"
PAGE_AFTER = (
    f"SELECT {COLUMNS} FROM users WHERE {_LISTED} AND (created_at, id) > ($2, $3)"
    " ORDER BY created_at, id LIMIT $4"
)
PAGE_EMAIL = (
    f"SELECT {COLUMNS} FROM users"
    ' WHERE (email_normalized COLLATE "C") >= $1 AND (email_normalized COLLATE "C") < $2'
    ' AND (email_normalized COLLATE "C") <> $3'
    " AND status <> 'deleted' AND ($4::text IS NULL OR status = $4)"
    ' ORDER BY email_normalized COLLATE "C" LIMIT $5'
)


async def page_by_created(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """``limit`` users in creation order after ``after``; one more to tell a next page.

    Two statements, not ``($2 IS NULL OR (created_at, id) > ...)``: a prepared
    statement's generic plan could not start the index scan at the cursor then,
    and a deep page would read every row before it."""
    if after is None:
        return list(await conn.fetch(PAGE_FIRST, status, limit + 1))
    return list(await conn.fetch(PAGE_AFTER, status, after[0], after[1], limit + 1))


# Above every character a normalized address can hold: [prefix, prefix + TOP) is
# exactly the addresses starting with prefix in "C" (code point) order.
TOP = "\U0010ffff"


async def page_by_email(
    conn: asyncpg.Connection,
    prefix: str,
    *,
    status: str | None,
    after: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Users whose normalized address starts with ``prefix``, in address order: a
    range of the ``COLLATE "C"`` index (a range, not LIKE, so that a generic plan
    uses it too; ``%`` and ``_`` are plain characters)."""
    low = prefix if after is None or after < prefix else after
    skip = after if after is not None else ""
    return list(await conn.fetch(PAGE_EMAIL, low, prefix + TOP, skip, status, limit + 1))


async def by_id(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM users WHERE id = $1 AND status <> 'deleted'", user_id
    )


def row_values(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row.items())


async def insert(
    conn: asyncpg.Connection,
    *,
    email: str,
    email_normalized: str,
    email_verified: bool,
    password_hash: str | None,
) -> asyncpg.Record | None:
    """A new user; None when the normalized address is taken in this app."""
    return await conn.fetchrow(
        "INSERT INTO users (email, email_normalized, email_verified, password_hash,"
        " password_changed_at) VALUES ($1, $2, $3, $4, CASE WHEN $4::text IS NULL THEN NULL"
        " ELSE now() END) ON CONFLICT (email_normalized) DO NOTHING"
        f" RETURNING {COLUMNS}",
        email.strip(),
        email_normalized,
        email_verified,
        password_hash,
    )


async def lock(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    """The user's row, locked for a change in this transaction."""
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM users WHERE id = $1 AND status <> 'deleted' FOR UPDATE", user_id
    )


async def update(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    email: str | None = None,
    email_normalized: str | None = None,
    email_verified: bool | None = None,
    status: str | None = None,
) -> asyncpg.Record | None:
    """Change the given columns; None when the new address is taken (unique)."""
    try:
        async with savepoint(conn):  # a taken address must not abort the unit
            return await conn.fetchrow(
                "UPDATE users SET email = coalesce($2, email),"
                " email_normalized = coalesce($3, email_normalized),"
                " email_verified = coalesce($4, email_verified), status = coalesce($5, status),"
                " updated_at = now() WHERE id = $1 AND status <> 'deleted'"
                f" RETURNING {COLUMNS}",
                user_id,
                email,
                email_normalized,
                email_verified,
                status,
            )
    except asyncpg.UniqueViolationError:
        return None


async def delete(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """Remove the user; sessions, tokens, factors, identities, memberships and role
    grants go with it (ON DELETE CASCADE). The audit log keeps the user's id."""
    return await conn.fetchval("DELETE FROM users WHERE id = $1 RETURNING true", user_id) is True


async def delete_factors(conn: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, int]:
    """Remove every second factor and the recovery codes: counts by kind."""
    rows = await conn.fetch("DELETE FROM mfa_factors WHERE user_id = $1 RETURNING kind", user_id)
    counts = {"totp": 0, "webauthn": 0, "recovery_codes": 0}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    return counts


async def count_live_sessions(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    value = await conn.fetchval(
        "SELECT (SELECT count(*) FROM browser_sessions WHERE user_id = $1"
        "  AND revoked_at IS NULL AND expires_at > now())"
        " + (SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL"
        "  AND expires_at > now() AND browser_session_id IS NULL)",
        user_id,
    )
    return int(value or 0)
