"""A user's email address: verification state and changes (SQL, app context)."""

from __future__ import annotations

import uuid

import asyncpg


async def mark_verified(
    conn: asyncpg.Connection, user_id: uuid.UUID, email_normalized: str
) -> bool:
    """Verified only if the account still has the address the proof was sent to."""
    done = await conn.fetchval(
        "UPDATE users SET email_verified = true, updated_at = now()"
        " WHERE id = $1 AND email_normalized = $2 RETURNING id",
        user_id,
        email_normalized,
    )
    return done is not None


async def change(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    old_normalized: str,
    email: str,
    email_normalized: str,
) -> bool:
    """Move the account to a confirmed new address; False if the old one changed meanwhile.

    Raises asyncpg.UniqueViolationError if another account took the address.
    """
    done = await conn.fetchval(
        "UPDATE users SET email = $3, email_normalized = $4, email_verified = true,"
        " updated_at = now() WHERE id = $1 AND email_normalized = $2 RETURNING id",
        user_id,
        old_normalized,
        email.strip(),
        email_normalized,
    )
    return done is not None
