"""Finding the user a role or membership change is about (operator and org admins)."""

from __future__ import annotations

import uuid

import asyncpg

from oneauth.errors import UserNotFound
from oneauth.identity import users
from oneauth.identity.users import InvalidEmail, User, normalize_email


async def resolve(conn: asyncpg.Connection, ref: uuid.UUID | str) -> User:
    """A user by id or by email address; ``UserNotFound`` otherwise.

    Only for the operator and org admins: sign-in and sign-up never tell
    whether an account exists (P4), and they never call this.
    """
    if isinstance(ref, uuid.UUID):
        found = await users.by_id(conn, ref)
    elif "@" in ref:
        try:
            found = await users.by_email(conn, normalize_email(ref))
        except InvalidEmail:
            found = None
    else:
        found = await users.by_id(conn, ref.strip())
    if found is None:
        raise UserNotFound(f"no user {str(ref)!r} in this app", extra={"field": "user"})
    return found
