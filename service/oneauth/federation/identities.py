"""``user_identities``: a user's upstream identities (SQL; the connection comes first).

Keyed by (provider, upstream issuer, upstream subject) in the app's schema
(B5, F1): never by email, never across apps. Microsoft's subject is
``<tid>:<oid>`` (:func:`oneauth.federation.upstream.profile`), so a changed
(or attacker-set) email in an Entra tenant names nobody (nOAuth).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from oneauth.identity.users import COLUMNS as USER_COLUMNS
from oneauth.identity.users import User

COLUMNS = (
    "id, user_id, provider_id, issuer, subject, email, email_verified, created_at, last_login_at"
)


@dataclass(frozen=True, slots=True)
class Identity:
    id: uuid.UUID
    user_id: uuid.UUID
    provider_id: str
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    created_at: datetime
    last_login_at: datetime | None

    def public(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "provider_id": self.provider_id,
            "issuer": self.issuer,
            "email": self.email,
            "email_verified": self.email_verified,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


def _identity(row: asyncpg.Record | None) -> Identity | None:
    return None if row is None else Identity(**dict(row))


async def find(
    conn: asyncpg.Connection, provider_id: str, issuer: str, subject: str
) -> Identity | None:
    return _identity(
        await conn.fetchrow(
            f"SELECT {COLUMNS} FROM user_identities"
            " WHERE provider_id = $1 AND issuer = $2 AND subject = $3",
            provider_id,
            issuer,
            subject,
        )
    )


async def for_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[Identity]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM user_identities WHERE user_id = $1 ORDER BY created_at, id",
        user_id,
    )
    return [Identity(**dict(r)) for r in rows]


async def link(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    provider_id: str,
    issuer: str,
    subject: str,
    email: str | None,
    email_verified: bool,
    tokens_sealed: str | None,
) -> Identity | None:
    """Link an upstream identity to ``user_id``; None if it is linked already (to
    anyone: the unique key decides, so two concurrent links make one)."""
    return _identity(
        await conn.fetchrow(
            "INSERT INTO user_identities (user_id, provider_id, issuer, subject, email,"
            " email_verified, tokens_sealed, last_login_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, now())"
            " ON CONFLICT (provider_id, issuer, subject) DO NOTHING"
            f" RETURNING {COLUMNS}",
            user_id,
            provider_id,
            issuer,
            subject,
            email,
            email_verified,
            tokens_sealed,
        )
    )


async def touch(
    conn: asyncpg.Connection,
    identity_id: uuid.UUID,
    *,
    email: str | None,
    email_verified: bool,
    tokens_sealed: str | None,
) -> None:
    """A sign-in through the identity: what the upstream says now (display only),
    and its tokens: the new ones replace the old (F10); None (``keep_tokens`` off)
    forgets any kept before."""
    await conn.execute(
        "UPDATE user_identities SET last_login_at = now(), email = $2, email_verified = $3,"
        " tokens_sealed = $4 WHERE id = $1",
        identity_id,
        email,
        email_verified,
        tokens_sealed,
    )


async def sealed_tokens(
    conn: asyncpg.Connection, user_id: uuid.UUID, provider_id: str
) -> tuple[str, str, str] | None:
    """(issuer, subject, sealed tokens) of the user's identity at the provider, if
    tokens are kept (F10; :mod:`oneauth.federation.tokens` opens them)."""
    row = await conn.fetchrow(
        "SELECT issuer, subject, tokens_sealed FROM user_identities"
        " WHERE user_id = $1 AND provider_id = $2 AND tokens_sealed IS NOT NULL"
        " ORDER BY last_login_at DESC NULLS LAST LIMIT 1",
        user_id,
        provider_id,
    )
    return None if row is None else (row["issuer"], row["subject"], row["tokens_sealed"])


async def unlink(conn: asyncpg.Connection, user_id: uuid.UUID, identity_id: uuid.UUID) -> bool:
    status = await conn.execute(
        "DELETE FROM user_identities WHERE id = $1 AND user_id = $2", identity_id, user_id
    )
    return bool(status.endswith(" 1"))


async def create_user(
    conn: asyncpg.Connection, *, email: str, email_normalized: str
) -> User | None:
    """A user created by a federated sign-in (just in time): no password, the
    address verified (the upstream verified it, in the response it came in).
    None if the address is taken in this app."""
    row = await conn.fetchrow(
        "INSERT INTO users (email, email_normalized, email_verified)"
        " VALUES ($1, $2, true) ON CONFLICT (email_normalized) DO NOTHING"
        f" RETURNING {USER_COLUMNS}",
        email.strip(),
        email_normalized,
    )
    return None if row is None else User(**dict(row))
