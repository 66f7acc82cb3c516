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

__all__ = ["COLUMNS", "by_id", "escape_like", "page_by_created", "page_by_email"]

COLUMNS = (
    "id, email, email_normalized, email_verified, status, password_hash IS NOT NULL"
    " AS has_password, created_at, updated_at, last_login_at"
)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def page_by_created(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """``limit`` users in creation order after ``after``; one more to tell a next page."""
    return list(
        await conn.fetch(
            f"SELECT {COLUMNS} FROM users WHERE status <> 'deleted'"
            " AND ($1::text IS NULL OR status = $1)"
            " AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))"
            " ORDER BY created_at, id LIMIT $4",
            status,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
    )


async def page_by_email(
    conn: asyncpg.Connection,
    prefix: str,
    *,
    status: str | None,
    after: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Users whose normalized address starts with ``prefix``, in address order."""
    return list(
        await conn.fetch(
            f"SELECT {COLUMNS} FROM users"
            " WHERE (email_normalized COLLATE \"C\") LIKE $1 || '%' ESCAPE '\\'"
            " AND status <> 'deleted' AND ($2::text IS NULL OR status = $2)"
            ' AND ($3::text IS NULL OR (email_normalized COLLATE "C") > $3)'
            ' ORDER BY email_normalized COLLATE "C" LIMIT $4',
            escape_like(prefix),
            status,
            after,
            limit + 1,
        )
    )


async def by_id(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM users WHERE id = $1 AND status <> 'deleted'", user_id
    )


def row_values(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row.items())
