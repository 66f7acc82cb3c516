"""Remembered consent of a user to a third-party client (SQL; app context).

First-party clients never ask (their flag says the app itself runs them). A
third-party client asks once per user for a set of scopes; asking for more
later asks again. Revoking a consent also ends that client's sessions of the
user, so the refresh tokens it holds stop working at once, and deletes the
authorization codes it was issued and has not exchanged yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg


async def covers(
    conn: asyncpg.Connection, user_id: uuid.UUID, client_id: str, scopes: Iterable[str]
) -> bool:
    # FOR SHARE: the caller issues a code on this answer in the same transaction.
    # A withdrawal (UPDATE) then waits for that code to commit and deletes it;
    # one already committed makes this read find no consent.
    granted = await conn.fetchval(
        "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL"
        " FOR SHARE",
        user_id,
        client_id,
    )
    return granted is not None and set(scopes) <= set(granted)


async def grant(
    conn: asyncpg.Connection, user_id: uuid.UUID, client_id: str, scopes: Iterable[str]
) -> None:
    """Remember consent to ``scopes``, added to what is still granted."""
    await conn.execute(
        "INSERT INTO consents AS c (user_id, client_id, scopes) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_id, client_id) DO UPDATE SET"
        "   scopes = ARRAY(SELECT DISTINCT s FROM unnest(CASE WHEN c.revoked_at IS NULL"
        "     THEN c.scopes || EXCLUDED.scopes ELSE EXCLUDED.scopes END) AS s ORDER BY s),"
        "   granted_at = CASE WHEN c.revoked_at IS NULL THEN c.granted_at ELSE now() END,"
        "   updated_at = now(), revoked_at = NULL",
        user_id,
        client_id,
        sorted(set(scopes)),
    )


async def list_active(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT c.client_id, k.name AS client_name, c.scopes, c.granted_at, c.updated_at"
            " FROM consents c JOIN clients k ON k.client_id = c.client_id"
            " WHERE c.user_id = $1 AND c.revoked_at IS NULL ORDER BY c.granted_at",
            user_id,
        )
    )


async def revoke(conn: asyncpg.Connection, user_id: uuid.UUID, client_id: str) -> int | None:
    """Withdraw consent; returns how many of the client's sessions ended, None if none held.

    In one transaction: the consent, the client's unredeemed codes for the user
    (a code issued before must not turn into tokens after), then its sessions.
    """
    found = await conn.fetchval(
        "UPDATE consents SET revoked_at = now(), updated_at = now()"
        " WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL RETURNING 1",
        user_id,
        client_id,
    )
    if found is None:
        return None
    # Codes issued under the consent and not yet exchanged die with it. First,
    # before the sessions: an exchange in flight holds its code's row lock, so
    # this waits for it to commit and the UPDATE below (a new snapshot under
    # READ COMMITTED) then sees, and ends, the session that exchange made.
    await conn.execute(
        "DELETE FROM authorization_codes WHERE user_id = $1 AND client_id = $2 AND used_at IS NULL",
        user_id,
        client_id,
    )
    ended = await conn.fetch(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'consent_revoked'"
        " WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL RETURNING id",
        user_id,
        client_id,
    )
    ids = [r["id"] for r in ended]
    if ids:
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now()"
            " WHERE session_id = ANY($1::uuid[]) AND revoked_at IS NULL",
            ids,
        )
    return len(ids)
