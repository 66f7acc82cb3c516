"""Organizations as stored: the ``Org`` row, reading it, and what every org service
shares (issue 13). An org id (``org_`` + random) or slug names a row of this app's
schema only (B1)."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import asyncpg

from oneauth.errors import OrgNotFound
from oneauth.orgs import names
from oneauth.orgs.actor import Actor

JoinPolicy = Literal["off", "offer", "automatic"]
JoinedVia = Literal["created", "operator", "invitation", "domain", "api"]
JOIN_POLICIES: Final = ("off", "offer", "automatic")
ADMIN_ROLE: Final = "admin"
MEMBER_ROLE: Final = "member"
BRANDING_KEYS: Final = ("display_name", "logo_url", "primary_color")
MAX_PAGE = 500


def new_org_id() -> str:
    return "org_" + secrets.token_urlsafe(16)


def looks_like_org_id(value: str) -> bool:
    return value.startswith("org_") and 20 <= len(value) <= 68


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    slug: str
    name: str
    status: str
    mfa_required: bool
    join_policy: str
    branding: dict[str, Any]
    default_role: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "status": self.status,
            "mfa_required": self.mfa_required,
            "join_policy": self.join_policy,
            "branding": self.branding,
            "default_role": self.default_role,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


# --- reading -----------------------------------------------------------------

ORG_COLUMNS = (
    "o.id, o.slug, o.name, o.status, o.mfa_required, o.join_policy, o.branding,"
    " (SELECT r.name FROM org_roles r WHERE r.id = o.default_role_id) AS default_role,"
    " o.created_at, o.updated_at"
)
_SELECT_ORG = f"SELECT {ORG_COLUMNS} FROM organizations o"


def org_from_row(row: asyncpg.Record) -> Org:
    branding = row["branding"]
    if isinstance(branding, str):
        branding = json.loads(branding)
    return Org(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        status=row["status"],
        mfa_required=row["mfa_required"],
        join_policy=row["join_policy"],
        branding=dict(branding),
        default_role=row["default_role"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def get(conn: asyncpg.Connection, org_id: str) -> Org | None:
    """The org with this id, or (no ``org_`` prefix) this slug; None if this app has none."""
    if not isinstance(org_id, str) or len(org_id) > 100:
        return None
    if not org_id.startswith("org_"):
        return await by_slug(conn, org_id)
    row = await conn.fetchrow(_SELECT_ORG + " WHERE o.id = $1", org_id)
    return None if row is None else org_from_row(row)


async def by_slug(conn: asyncpg.Connection, slug: str) -> Org | None:
    if not isinstance(slug, str) or len(slug) > names.SLUG_MAX:
        return None
    row = await conn.fetchrow(_SELECT_ORG + " WHERE o.slug = $1", slug)
    return None if row is None else org_from_row(row)


async def require_org(conn: asyncpg.Connection, org_id: str, *, lock: bool = False) -> Org:
    """``get`` or ``OrgNotFound``; ``lock`` holds the org row for this transaction."""
    org = await get(conn, org_id)
    if org is None:
        raise OrgNotFound(extra={"field": "org_id"})
    if lock:
        await conn.execute("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE", org.id)
    return org


async def list_all(
    conn: asyncpg.Connection, *, cursor: str | None = None, limit: int = 100
) -> tuple[list[Org], str | None]:
    """Orgs by slug, a page at a time; the second value is the next page's cursor."""
    limit = max(1, min(limit, MAX_PAGE))
    rows = await conn.fetch(
        _SELECT_ORG + " WHERE ($1::text IS NULL OR o.slug > $1) ORDER BY o.slug LIMIT $2",
        cursor,
        limit + 1,
    )
    found = [org_from_row(r) for r in rows[:limit]]
    return found, (found[-1].slug if len(rows) > limit else None)


async def of_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[tuple[Org, list[str]]]:
    """The orgs a user belongs to, each with the user's org role names."""
    rows = await conn.fetch(
        f"SELECT {ORG_COLUMNS},"
        " coalesce((SELECT array_agg(r.name ORDER BY r.name) FROM org_member_roles mr"
        "  JOIN org_roles r ON r.id = mr.org_role_id"
        "  WHERE mr.org_id = m.org_id AND mr.user_id = m.user_id), '{}') AS org_roles"
        " FROM org_members m JOIN organizations o ON o.id = m.org_id"
        " WHERE m.user_id = $1 ORDER BY o.slug",
        user_id,
    )
    return [(org_from_row(r), list(r["org_roles"])) for r in rows]


def audit_fields(actor: Actor, org_id: str) -> dict[str, Any]:
    return {
        "actor_type": actor.type,
        "actor_id": actor.id,
        "target_type": "organization",
        "target_id": org_id,
    }


async def end_sessions(
    conn: asyncpg.Connection, org_id: str, reason: str, user_id: uuid.UUID | None = None
) -> int:
    """Revoke the refresh families scoped to this org (of one user, if given)."""
    ended = await conn.fetch(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3"
        " WHERE org_id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND revoked_at IS NULL"
        " RETURNING id",
        org_id,
        user_id,
        reason,
    )
    ids = [r["id"] for r in ended]
    if ids:
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now()"
            " WHERE session_id = ANY($1::uuid[]) AND revoked_at IS NULL",
            ids,
        )
    return len(ids)
