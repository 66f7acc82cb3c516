"""The user's linked upstream identities, as the account surfaces see them (issue 14).

SQL over fed-core's ``user_identities`` and ``identity_providers`` (0015) for the
self-service list and unlink; each function takes a connection in the app's
context (the rows live in its schema: nothing of app B is reachable here).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class LinkedIdentity:
    id: uuid.UUID
    provider_id: str
    provider_name: str
    kind: str
    issuer: str
    email: str | None
    email_verified: bool
    created_at: datetime
    last_login_at: datetime | None


async def of_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[LinkedIdentity]:
    rows = await conn.fetch(
        "SELECT i.id, i.provider_id, p.name AS provider_name, p.kind, i.issuer, i.email,"
        " i.email_verified, i.created_at, i.last_login_at"
        " FROM user_identities i JOIN identity_providers p ON p.id = i.provider_id"
        " WHERE i.user_id = $1 ORDER BY i.created_at, i.id",
        user_id,
    )
    return [LinkedIdentity(**dict(r)) for r in rows]


@dataclass(frozen=True, slots=True)
class SignInWays:
    """What the user can sign in with besides one identity (:func:`ways_besides`)."""

    password: bool
    passkeys: int
    email_verified: bool
    identities: int  # other identities at enabled providers


async def ways_besides(
    conn: asyncpg.Connection, user_id: uuid.UUID, identity_id: uuid.UUID
) -> SignInWays | None:
    """The user's other ways to sign in, with the user's row locked (two unlinks at
    once cannot both pass the check); None if ``identity_id`` is not the user's."""
    row = await conn.fetchrow(
        "SELECT u.password_hash IS NOT NULL AS password, u.email_verified,"
        " EXISTS (SELECT 1 FROM user_identities WHERE id = $2 AND user_id = u.id) AS mine,"
        " (SELECT count(*) FROM mfa_factors f WHERE f.user_id = u.id AND f.kind = 'webauthn'"
        "  AND f.confirmed_at IS NOT NULL) AS passkeys,"
        " (SELECT count(*) FROM user_identities i JOIN identity_providers p"
        "  ON p.id = i.provider_id AND p.enabled WHERE i.user_id = u.id AND i.id <> $2)"
        "  AS identities"
        " FROM users u WHERE u.id = $1 FOR UPDATE OF u",
        user_id,
        identity_id,
    )
    if row is None or not row["mine"]:
        return None
    return SignInWays(
        password=row["password"],
        passkeys=int(row["passkeys"]),
        email_verified=row["email_verified"],
        identities=int(row["identities"]),
    )


async def delete(
    conn: asyncpg.Connection, user_id: uuid.UUID, identity_id: uuid.UUID
) -> LinkedIdentity | None:
    row = await conn.fetchrow(
        "DELETE FROM user_identities i USING identity_providers p"
        " WHERE i.id = $2 AND i.user_id = $1 AND p.id = i.provider_id"
        " RETURNING i.id, i.provider_id, p.name AS provider_name, p.kind, i.issuer, i.email,"
        " i.email_verified, i.created_at, i.last_login_at",
        user_id,
        identity_id,
    )
    return None if row is None else LinkedIdentity(**dict(row))
