"""Ending every session a user has in one app: token sessions and hosted-page sessions.

A password reset must sign the user out everywhere in the app (S3, ASVS
7.4.1): the refresh families (``sessions``) and the browser sessions of the
hosted login pages (``browser_sessions``).
"""

from __future__ import annotations

import uuid

import asyncpg

from oneauth.sessions import repo as sessions


async def end_all(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    reason: str,
    except_session: uuid.UUID | None = None,
) -> int:
    """End everything (but the token session ``except_session``); returns how many
    sessions of either kind ended."""
    # Browser sessions first, to count them (revoke_user_sessions ends them too).
    status = await conn.execute(
        "UPDATE browser_sessions SET revoked_at = now(), revoked_reason = $2"
        " WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        reason,
    )
    ended = await sessions.revoke_user_sessions(
        conn, user_id, reason=reason, except_session=except_session
    )
    return ended + int(status.split()[-1])
