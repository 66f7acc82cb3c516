"""Members of an organization and the permission checks (issue 13).

Managing an org is checked against permission names (``org:members:write``,
``org:invitations:write``, ``org:settings:write``), never role names
(``require``). A member gives only roles whose permissions they hold, and a
user's change never leaves the org without a member manager. Ending a
membership ends the user's refresh families scoped to the org (S3).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from oneauth import audit, webhooks
from oneauth.errors import (
    AlreadyMember,
    LastOrgManager,
    MemberNotFound,
    OrgNotFound,
    OrgPermissionRequired,
    OrgSuspended,
)
from oneauth.orgs.actor import Actor
from oneauth.orgs.model import (
    MAX_PAGE,
    MEMBER_ROLE,
    JoinedVia,
    Org,
    audit_fields,
    end_sessions,
    get,
    require_org,
)
from oneauth.orgs.org_roles import role_ids
from oneauth.orgs.users import resolve


@dataclass(frozen=True, slots=True)
class Membership:
    org_id: str
    user_id: uuid.UUID
    joined_via: str
    joined_at: datetime
    roles: list[str]
    permissions: frozenset[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "user_id": str(self.user_id),
            "joined_via": self.joined_via,
            "joined_at": self.joined_at.isoformat(),
            "roles": self.roles,
            "permissions": sorted(self.permissions),
        }


@dataclass(frozen=True, slots=True)
class Member:
    """A row of the member list: who, since when, with which org roles."""

    user_id: uuid.UUID
    email: str
    joined_via: str
    joined_at: datetime
    roles: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            "email": self.email,
            "joined_via": self.joined_via,
            "joined_at": self.joined_at.isoformat(),
            "roles": self.roles,
        }


# --- members ------------------------------------------------------------------------

MANAGE_MEMBERS: Final = "org:members:write"


async def check_grantable(
    conn: asyncpg.Connection, org_id: str, actor: Actor, role_id_list: list[uuid.UUID]
) -> None:
    """A user may give only roles whose permissions they hold in this org themselves
    (no escalation: inviting as ``admin`` needs every permission ``admin`` has).
    The operator and the org's clients are not limited."""
    user_id = actor.user_id
    if user_id is None or not role_id_list:
        return
    missing = await conn.fetch(
        "SELECT DISTINCT p.permission FROM org_role_permissions p"
        " WHERE p.org_role_id = ANY($3::uuid[]) AND p.permission NOT IN ("
        "  SELECT q.permission FROM org_member_roles mr"
        "  JOIN org_role_permissions q ON q.org_role_id = mr.org_role_id"
        "  WHERE mr.org_id = $1 AND mr.user_id = $2)",
        org_id,
        user_id,
        role_id_list,
    )
    if missing:
        names_missing = sorted(r["permission"] for r in missing)
        raise OrgPermissionRequired(
            "you can only give roles whose permissions you hold: " + ", ".join(names_missing),
            extra={"permission": names_missing[0], "field": "roles"},
        )


async def managers(conn: asyncpg.Connection, org_id: str) -> int:
    """How many members hold org:members:write."""
    count = await conn.fetchval(
        "SELECT count(DISTINCT mr.user_id) FROM org_member_roles mr JOIN org_role_permissions p"
        " ON p.org_role_id = mr.org_role_id WHERE mr.org_id = $1 AND p.permission = $2",
        org_id,
        MANAGE_MEMBERS,
    )
    return int(count or 0)


async def _keeps_a_manager(
    conn: asyncpg.Connection,
    org_id: str,
    user_id: uuid.UUID,
    actor: Actor,
    new_role_ids: list[uuid.UUID] | None,
) -> None:
    """Refuse, before anything is written, a user's change that would leave the org
    without a member manager: ``user_id`` loses the roles (``new_role_ids=None``:
    the membership) while nobody else holds org:members:write. The operator is
    not limited: it can always manage the org."""
    if actor.user_id is None:
        return
    row = await conn.fetchrow(
        "SELECT"
        " EXISTS (SELECT 1 FROM org_member_roles mr JOIN org_role_permissions p"
        "   ON p.org_role_id = mr.org_role_id"
        "   WHERE mr.org_id = $1 AND mr.user_id = $2 AND p.permission = $3) AS is_manager,"
        " EXISTS (SELECT 1 FROM org_member_roles mr JOIN org_role_permissions p"
        "   ON p.org_role_id = mr.org_role_id"
        "   WHERE mr.org_id = $1 AND mr.user_id <> $2 AND p.permission = $3) AS others,"
        " EXISTS (SELECT 1 FROM org_role_permissions p"
        "   WHERE p.org_role_id = ANY($4::uuid[]) AND p.permission = $3) AS stays",
        org_id,
        user_id,
        MANAGE_MEMBERS,
        new_role_ids or [],
    )
    if row["is_manager"] and not row["others"] and not row["stays"]:
        raise LastOrgManager()


async def _join(
    conn: asyncpg.Connection,
    org_id: str,
    user_id: uuid.UUID,
    role_id_list: list[uuid.UUID],
    via: str,
) -> bool:
    """Add the membership (if new) and these roles; True if the membership is new."""
    added = await conn.fetchval(
        "INSERT INTO org_members (org_id, user_id, joined_via) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING org_id",
        org_id,
        user_id,
        via,
    )
    if role_id_list:
        await conn.execute(
            "INSERT INTO org_member_roles (org_id, user_id, org_role_id)"
            " SELECT $1, $2, unnest($3::uuid[]) ON CONFLICT DO NOTHING",
            org_id,
            user_id,
            role_id_list,
        )
    return added is not None


async def default_role_ids(conn: asyncpg.Connection, org_id: str) -> list[uuid.UUID]:
    """The org's default role, else the template role ``member`` (if the app kept it)."""
    role_id = await conn.fetchval(
        "SELECT coalesce(o.default_role_id,"
        " (SELECT r.id FROM org_roles r WHERE r.org_id IS NULL AND r.name = $2))"
        " FROM organizations o WHERE o.id = $1",
        org_id,
        MEMBER_ROLE,
    )
    return [] if role_id is None else [role_id]


async def _audit_member(
    conn: asyncpg.Connection,
    event: str,
    actor: Actor,
    meta: audit.RequestMeta,
    org_id: str,
    user_id: uuid.UUID,
    role_names: list[str] | None,
    via: str | None = None,
    **details: Any,
) -> None:
    await audit.record(
        conn,
        event,
        "success",
        meta,
        **audit_fields(actor, org_id),
        details={
            "user_id": str(user_id),
            **({"roles": role_names} if role_names is not None else {}),
            **({"via": via} if via else {}),
            **details,
        },
    )


async def join(
    conn: asyncpg.Connection,
    org: Org,
    user_id: uuid.UUID,
    *,
    roles: list[str] | None,
    via: JoinedVia,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Membership:
    """Make a user a member (or add roles to an existing membership): invitations
    and domain joins. ``roles=None`` or empty: the default role."""
    ids = await role_ids(conn, org.id, roles) if roles else await default_role_ids(conn, org.id)
    new = await _join(conn, org.id, user_id, ids, via)
    if new:
        await webhooks.emit(
            conn,
            webhooks.app_of(conn),
            "org.member_added",
            {"org_id": org.id, "user_id": str(user_id), "via": via},
        )
    found = await membership(conn, org.id, user_id)
    assert found is not None
    await _audit_member(
        conn,
        "org.member.add" if new else "org.member.roles_add",
        actor,
        meta,
        org.id,
        user_id,
        found.roles,
        via,
    )
    return found


async def add_member(
    conn: asyncpg.Connection,
    org_id: str,
    user_id: uuid.UUID | str,
    *,
    roles: Iterable[str] | None = None,
    via: JoinedVia = "operator",
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Membership:
    """Add a user (id or email) to an org with these roles, else the default role.
    ``AlreadyMember`` if they are one (change roles with ``set_member_roles``)."""
    org = await require_org(conn, org_id)
    user = await resolve(conn, user_id)
    wanted = list(roles or [])
    ids = await role_ids(conn, org.id, wanted) if wanted else await default_role_ids(conn, org.id)
    await check_grantable(conn, org.id, actor, ids)
    if await conn.fetchval(
        "SELECT 1 FROM org_members WHERE org_id = $1 AND user_id = $2", org.id, user.id
    ):
        raise AlreadyMember(extra={"field": "user_id"})
    await _join(conn, org.id, user.id, ids, via)
    await webhooks.emit(
        conn,
        webhooks.app_of(conn),
        "org.member_added",
        {"org_id": org.id, "user_id": str(user.id), "via": via},
    )
    found = await membership(conn, org.id, user.id)
    assert found is not None
    await _audit_member(conn, "org.member.add", actor, meta, org.id, user.id, found.roles, via)
    return found


async def set_member_roles(
    conn: asyncpg.Connection,
    org_id: str,
    user_id: uuid.UUID | str,
    roles: Iterable[str],
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Membership:
    """Replace a member's org roles (tokens issued before keep theirs until they expire)."""
    org = await require_org(conn, org_id)
    user = await resolve(conn, user_id)
    ids = await role_ids(conn, org.id, list(roles))
    await check_grantable(conn, org.id, actor, ids)
    # The org row lock serializes member changes of one org, so two admins
    # demoting each other at once cannot both pass the last-manager check.
    await conn.execute("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE", org.id)
    held = await conn.fetchval(
        "SELECT 1 FROM org_members WHERE org_id = $1 AND user_id = $2", org.id, user.id
    )
    if held is None:
        raise MemberNotFound(extra={"field": "user_id"})
    await _keeps_a_manager(conn, org.id, user.id, actor, ids)
    await conn.execute(
        "DELETE FROM org_member_roles WHERE org_id = $1 AND user_id = $2"
        " AND NOT (org_role_id = ANY($3::uuid[]))",
        org.id,
        user.id,
        ids,
    )
    await _join(conn, org.id, user.id, ids, "operator")
    found = await membership(conn, org.id, user.id)
    assert found is not None
    await _audit_member(conn, "org.member.roles_set", actor, meta, org.id, user.id, found.roles)
    return found


async def remove_member(
    conn: asyncpg.Connection,
    org_id: str,
    user_id: uuid.UUID | str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> int:
    """End a membership and the user's sessions scoped to this org (reason
    ``org_membership_ended``); returns the number of sessions ended."""
    org = await require_org(conn, org_id, lock=True)
    user = await resolve(conn, user_id)
    await _keeps_a_manager(conn, org.id, user.id, actor, None)
    gone = await conn.fetchval(
        "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2 RETURNING user_id",
        org.id,
        user.id,
    )
    if gone is None:
        raise MemberNotFound(extra={"field": "user_id"})
    await webhooks.emit(
        conn,
        webhooks.app_of(conn),
        "org.member_removed",
        {"org_id": org.id, "user_id": str(user.id)},
    )
    ended = await end_sessions(conn, org.id, "org_membership_ended", user.id)
    await _audit_member(
        conn, "org.member.remove", actor, meta, org.id, user.id, None, sessions_ended=ended
    )
    return ended


async def membership(
    conn: asyncpg.Connection, org_id: str, user_id: uuid.UUID
) -> Membership | None:
    """A user's membership with its org role names and the permissions they give."""
    row = await conn.fetchrow(
        "SELECT m.org_id, m.user_id, m.joined_via, m.joined_at,"
        " coalesce((SELECT array_agg(r.name ORDER BY r.name) FROM org_member_roles mr"
        "   JOIN org_roles r ON r.id = mr.org_role_id"
        "   WHERE mr.org_id = m.org_id AND mr.user_id = m.user_id), '{}') AS roles,"
        " coalesce((SELECT array_agg(DISTINCT p.permission) FROM org_member_roles mr"
        "   JOIN org_role_permissions p ON p.org_role_id = mr.org_role_id"
        "   WHERE mr.org_id = m.org_id AND mr.user_id = m.user_id), '{}') AS permissions"
        " FROM org_members m WHERE m.org_id = $1 AND m.user_id = $2",
        org_id,
        user_id,
    )
    if row is None:
        return None
    return Membership(
        org_id=row["org_id"],
        user_id=row["user_id"],
        joined_via=row["joined_via"],
        joined_at=row["joined_at"],
        roles=list(row["roles"]),
        permissions=frozenset(row["permissions"]),
    )


async def require(
    conn: asyncpg.Connection, org_id: str, user_id: uuid.UUID, permission: str
) -> tuple[Org, Membership]:
    """The org and the caller's membership if it gives ``permission``.

    ``OrgNotFound`` for a non-member (whether or not the org exists: B1, P4),
    ``OrgSuspended`` when the org is suspended, ``OrgPermissionRequired``
    (``org_permission_required``) when the member's roles lack the permission.
    """
    org = await get(conn, org_id)
    found = None if org is None else await membership(conn, org.id, user_id)
    if org is None or found is None:
        raise OrgNotFound(extra={"field": "org_id"})
    if not org.active:
        raise OrgSuspended()
    if permission not in found.permissions:
        raise OrgPermissionRequired(
            f"this needs the org permission {permission!r}", extra={"permission": permission}
        )
    return org, found


async def members(
    conn: asyncpg.Connection, org_id: str, *, cursor: str | None = None, limit: int = 100
) -> tuple[list[Member], str | None]:
    """An org's members by email, a page at a time (the cursor is the last email)."""
    org = await require_org(conn, org_id)
    limit = max(1, min(limit, MAX_PAGE))
    rows = await conn.fetch(
        "SELECT u.id, u.email, m.joined_via, m.joined_at,"
        " coalesce((SELECT array_agg(r.name ORDER BY r.name) FROM org_member_roles mr"
        "   JOIN org_roles r ON r.id = mr.org_role_id"
        "   WHERE mr.org_id = m.org_id AND mr.user_id = m.user_id), '{}') AS roles"
        " FROM org_members m JOIN users u ON u.id = m.user_id"
        " WHERE m.org_id = $1 AND ($2::text IS NULL OR u.email_normalized > $2)"
        " ORDER BY u.email_normalized LIMIT $3",
        org.id,
        cursor,
        limit + 1,
    )
    page = [
        Member(r["id"], r["email"], r["joined_via"], r["joined_at"], list(r["roles"]))
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = await conn.fetchval(
            "SELECT email_normalized FROM users WHERE id = $1", page[-1].user_id
        )
    return page, next_cursor
