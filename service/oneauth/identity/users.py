"""Users of one app: the repository (SQL) and email normalization (B5).

Every function takes a connection already inside the app's context (router).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

# Deliberately permissive (RFC 5321 allows far more than any regex should
# judge); deliverability is what email verification proves.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}")


class InvalidEmail(ValueError):
    pass


def normalize_email(email: str) -> str:
    """The per-app identity key: NFKC, trimmed, lower-cased (B5)."""
    if not isinstance(email, str):
        raise InvalidEmail("email must be a string")
    normalized = unicodedata.normalize("NFKC", email).strip().lower()
    if len(normalized) > 254 or _EMAIL.fullmatch(normalized) is None:
        raise InvalidEmail("not a valid email address")
    return normalized


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    email_verified: bool
    password_hash: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime | None

    @property
    def sub(self) -> str:
        return str(self.id)

    def public(self) -> dict[str, object]:
        return {
            "id": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


COLUMNS = (
    "id, email, email_verified, password_hash, status, created_at, updated_at, password_changed_at"
)


def _user(row: asyncpg.Record | None) -> User | None:
    return None if row is None else User(*row.values())


async def by_email(conn: asyncpg.Connection, email_normalized: str) -> User | None:
    return _user(
        await conn.fetchrow(
            f"SELECT {COLUMNS} FROM users WHERE email_normalized = $1", email_normalized
        )
    )


async def by_id(conn: asyncpg.Connection, user_id: uuid.UUID | str) -> User | None:
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(user_id)
    except ValueError:
        return None
    return _user(await conn.fetchrow(f"SELECT {COLUMNS} FROM users WHERE id = $1", key))


async def create(
    conn: asyncpg.Connection, *, email: str, email_normalized: str, password_hash: str
) -> User | None:
    """Insert a user; None if the normalized email is taken in this app."""
    return _user(
        await conn.fetchrow(
            "INSERT INTO users (email, email_normalized, password_hash, password_changed_at)"
            " VALUES ($1, $2, $3, now()) ON CONFLICT (email_normalized) DO NOTHING"
            f" RETURNING {COLUMNS}",
            email.strip(),
            email_normalized,
            password_hash,
        )
    )


async def set_password(
    conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str, *, changed: bool = True
) -> None:
    """Store a new hash; ``changed=False`` for a rehash of the same password."""
    if changed:
        await conn.execute(
            "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now()"
            " WHERE id = $1",
            user_id,
            password_hash,
        )
    else:
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
        )


async def password_still(
    conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str | None
) -> bool:
    """The user still has this password hash; locks the row for the transaction,
    so a concurrent first proof (P7) or reset waits, or this sees its result."""
    current = await conn.fetchrow(
        "SELECT password_hash FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id
    )
    return (
        current is not None
        and password_hash is not None
        and current["password_hash"] == password_hash
    )


async def touch_login(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await conn.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user_id)
