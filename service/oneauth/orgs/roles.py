"""App roles and permissions: the app's own vocabulary (issue 13).

A permission is a name (``invoice:read``); a role bundles permissions; a user
holds roles app-wide. The access token's ``roles`` claim (and ``permissions``
when the client asks) is read by ``orgs.claims``. Every change is audited with
its actor (A1), in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from oneauth import audit
from oneauth.errors import Conflict, PermissionExists, PermissionNotFound, RoleExists, RoleNotFound
from oneauth.orgs import names
from oneauth.orgs.actor import Actor
from oneauth.orgs.users import resolve


@dataclass(frozen=True, slots=True)
class Role:
    id: uuid.UUID
    name: str
    description: str
    permissions: list[str]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "description": self.description,
            "permissions": self.permissions,
            "created_at": self.created_at.isoformat(),
        }


_SELECT = """
SELECT r.id, r.name, r.description,
       coalesce(array_agg(rp.permission ORDER BY rp.permission)
                FILTER (WHERE rp.permission IS NOT NULL), '{}') AS permissions,
       r.created_at
FROM roles r LEFT JOIN role_permissions rp ON rp.role_id = r.id
"""


def _role(row: asyncpg.Record) -> Role:
    return Role(
        row["id"], row["name"], row["description"], list(row["permissions"]), row["created_at"]
    )


def permission_list(values: Iterable[Any], field: str = "permissions") -> list[str]:
    """Validated, deduplicated, sorted permission names."""
    return sorted({names.permission_name(p, field) for p in values})


async def ensure_permissions(conn: asyncpg.Connection, permissions: list[str]) -> None:
    """Create the permissions this app does not have yet (the app's vocabulary grows)."""
    if permissions:
        await conn.execute(
            "INSERT INTO permissions (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            permissions,
        )


async def create_role(
    conn: asyncpg.Connection,
    name: str,
    *,
    permissions: Iterable[str] = (),
    description: str = "",
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Role:
    """Create a role with its permissions (missing permissions are created)."""
    name = names.role_name(name, "name")
    perms = permission_list(permissions)
    text = names.description(description)
    role_id = await conn.fetchval(
        "INSERT INTO roles (name, description) VALUES ($1, $2)"
        " ON CONFLICT (name) DO NOTHING RETURNING id",
        name,
        text,
    )
    if role_id is None:
        raise RoleExists(f"the app has a role named {name!r}", extra={"field": "name"})
    await ensure_permissions(conn, perms)
    await conn.execute(
        "INSERT INTO role_permissions (role_id, permission) SELECT $1, unnest($2::text[])",
        role_id,
        perms,
    )
    await audit.record(
        conn,
        "role.create",
        "success",
        meta,
        actor_type=actor.type,
        actor_id=actor.id,
        target_type="role",
        target_id=name,
        details={"permissions": perms},
    )
    role = await get_role(conn, name)
    assert role is not None
    return role


async def get_role(conn: asyncpg.Connection, name: str) -> Role | None:
    row = await conn.fetchrow(_SELECT + " WHERE r.name = $1 GROUP BY r.id", name)
    return None if row is None else _role(row)


async def list_roles(
    conn: asyncpg.Connection, *, after: str | None = None, limit: int | None = None
) -> list[Role]:
    """Roles by name; ``after`` (a name) and ``limit`` page through them (keyset)."""
    if after is None:
        rows = await conn.fetch(_SELECT + " GROUP BY r.id ORDER BY r.name LIMIT $1", limit)
    else:
        rows = await conn.fetch(
            _SELECT + " WHERE r.name > $1 GROUP BY r.id ORDER BY r.name LIMIT $2", after, limit
        )
    return [_role(r) for r in rows]


async def update_role(
    conn: asyncpg.Connection,
    name: str,
    *,
    description: str | None = None,
    permissions: Iterable[str] | None = None,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Role:
    """Change a role's description and/or replace its permissions (missing ones are
    created); tokens issued before keep the old claims until they expire."""
    name = names.role_name(name, "name")
    role_id = await conn.fetchval("SELECT id FROM roles WHERE name = $1 FOR UPDATE", name)
    if role_id is None:
        raise RoleNotFound(f"the app has no role {name!r}", extra={"field": "name"})
    details: dict[str, Any] = {}
    if description is not None:
        await conn.execute(
            "UPDATE roles SET description = $2, updated_at = now() WHERE id = $1",
            role_id,
            names.description(description),
        )
        details["description"] = True
    if permissions is not None:
        perms = permission_list(permissions)
        await ensure_permissions(conn, perms)
        await conn.execute(
            "DELETE FROM role_permissions WHERE role_id = $1 AND NOT (permission = ANY($2))",
            role_id,
            perms,
        )
        await conn.execute(
            "INSERT INTO role_permissions (role_id, permission) SELECT $1, unnest($2::text[])"
            " ON CONFLICT DO NOTHING",
            role_id,
            perms,
        )
        details["permissions"] = perms
    if details:
        await audit.record(
            conn,
            "role.update",
            "success",
            meta,
            actor_type=actor.type,
            actor_id=actor.id,
            target_type="role",
            target_id=name,
            details=details,
        )
    role = await get_role(conn, name)
    assert role is not None
    return role


@dataclass(frozen=True, slots=True)
class Permission:
    name: str
    description: str
    created_at: datetime


async def list_permissions(
    conn: asyncpg.Connection, *, after: str | None = None, limit: int | None = None
) -> list[Permission]:
    """The app's permissions by name (keyset ``after``)."""
    select = "SELECT name, description, created_at FROM permissions"
    if after is None:
        rows = await conn.fetch(select + " ORDER BY name LIMIT $1", limit)
    else:
        rows = await conn.fetch(select + " WHERE name > $1 ORDER BY name LIMIT $2", after, limit)
    return [Permission(r["name"], r["description"], r["created_at"]) for r in rows]


async def create_permission(
    conn: asyncpg.Connection,
    name: str,
    *,
    description: str = "",
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Permission:
    """Add a permission to the app's vocabulary; ``RoleExists``-like 409 if it exists."""
    name = names.permission_name(name, "name")
    row = await conn.fetchrow(
        "INSERT INTO permissions (name, description) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        " RETURNING name, description, created_at",
        name,
        names.description(description),
    )
    if row is None:
        raise PermissionExists(f"the app has a permission named {name!r}", extra={"field": "name"})
    await audit.record(
        conn,
        "permission.create",
        "success",
        meta,
        actor_type=actor.type,
        actor_id=actor.id,
        target_type="permission",
        target_id=name,
    )
    return Permission(row["name"], row["description"], row["created_at"])


async def delete_permission(
    conn: asyncpg.Connection,
    name: str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> None:
    """Remove a permission; the roles (app and org) that held it lose it. The built-in
    org permissions (``org:*``) stay: managing orgs is checked against them."""
    name = names.permission_name(name, "name")
    if name.startswith("org:"):
        raise Conflict(f"{name!r} is a built-in org permission", extra={"field": "name"})
    gone = await conn.fetchval("DELETE FROM permissions WHERE name = $1 RETURNING name", name)
    if gone is None:
        raise PermissionNotFound(f"the app has no permission {name!r}", extra={"field": "name"})
    await audit.record(
        conn,
        "permission.delete",
        "success",
        meta,
        actor_type=actor.type,
        actor_id=actor.id,
        target_type="permission",
        target_id=name,
    )


async def delete_role(
    conn: asyncpg.Connection,
    name: str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> None:
    """Delete a role; its grants go with it (tokens issued before keep it until they expire)."""
    name = names.role_name(name, "name")
    gone = await conn.fetchval("DELETE FROM roles WHERE name = $1 RETURNING id", name)
    if gone is None:
        raise RoleNotFound(f"the app has no role {name!r}", extra={"field": "name"})
    await audit.record(
        conn,
        "role.delete",
        "success",
        meta,
        actor_type=actor.type,
        actor_id=actor.id,
        target_type="role",
        target_id=name,
    )


async def _role_id(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    name = names.role_name(name)
    role_id = await conn.fetchval("SELECT id FROM roles WHERE name = $1", name)
    if role_id is None:
        raise RoleNotFound(f"the app has no role {name!r}", extra={"field": "role"})
    assert isinstance(role_id, uuid.UUID)
    return role_id


async def grant(
    conn: asyncpg.Connection,
    user_id: uuid.UUID | str,
    role_name: str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> bool:
    """Give a user a role app-wide; False if they had it already."""
    user = await resolve(conn, user_id)
    role_id = await _role_id(conn, role_name)
    added = await conn.fetchval(
        "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING role_id",
        user.id,
        role_id,
    )
    if added is not None:
        await audit.record(
            conn,
            "role.grant",
            "success",
            meta,
            actor_type=actor.type,
            actor_id=actor.id,
            target_type="user",
            target_id=user.sub,
            details={"role": role_name},
        )
    return added is not None


async def revoke(
    conn: asyncpg.Connection,
    user_id: uuid.UUID | str,
    role_name: str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> bool:
    """Take a role from a user; False if they did not have it."""
    user = await resolve(conn, user_id)
    role_id = await _role_id(conn, role_name)
    removed = await conn.fetchval(
        "DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2 RETURNING role_id",
        user.id,
        role_id,
    )
    if removed is not None:
        await audit.record(
            conn,
            "role.revoke",
            "success",
            meta,
            actor_type=actor.type,
            actor_id=actor.id,
            target_type="user",
            target_id=user.sub,
            details={"role": role_name},
        )
    return removed is not None


async def roles_of(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[str]:
    rows = await conn.fetch(
        "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id"
        " WHERE ur.user_id = $1 ORDER BY r.name",
        user_id,
    )
    return [r["name"] for r in rows]


async def permissions_of(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT rp.permission FROM user_roles ur"
        " JOIN role_permissions rp ON rp.role_id = ur.role_id"
        " WHERE ur.user_id = $1 ORDER BY rp.permission",
        user_id,
    )
    return [r["permission"] for r in rows]
