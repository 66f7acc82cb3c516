"""SQL of the account domain; every function takes the connection (in the app's context) first.

Every query names the user: a session id of another user, or of another app (its
row is in another schema), matches nothing.
"""

from __future__ import annotations

import uuid

import asyncpg


async def live_sessions(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    """The user's live sign-ins: hosted-page (browser) sessions, and token sessions not
    started from one (first-party API sign-ins); a browser session's token sessions
    end with it, so they are not listed apart. One round trip."""
    return list(
        await conn.fetch(
            "SELECT 'browser' AS kind, b.id, NULL::text AS client_id, NULL::text AS client_name,"
            "  b.amr, b.auth_time, b.created_at, b.last_seen_at, b.user_agent"
            " FROM browser_sessions b"
            " WHERE b.user_id = $1 AND b.revoked_at IS NULL AND b.expires_at > now()"
            " UNION ALL"
            " SELECT 'app', s.id, s.client_id, k.name, s.amr, s.auth_time, s.created_at,"
            "  s.last_seen_at, s.user_agent"
            " FROM sessions s JOIN clients k ON k.client_id = s.client_id"
            " WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()"
            "  AND s.browser_session_id IS NULL"
            " ORDER BY last_seen_at DESC",
            user_id,
        )
    )


async def session_kind(
    conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID
) -> str | None:
    """'browser' or 'app' if ``session_id`` is a live session of ``user_id``, else None."""
    value = await conn.fetchval(
        "SELECT 'browser' FROM browser_sessions WHERE id = $2 AND user_id = $1"
        " AND revoked_at IS NULL"
        " UNION ALL SELECT 'app' FROM sessions WHERE id = $2 AND user_id = $1"
        " AND revoked_at IS NULL LIMIT 1",
        user_id,
        session_id,
    )
    return value if isinstance(value, str) else None
