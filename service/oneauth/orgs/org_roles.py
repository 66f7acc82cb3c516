"""Org roles (issue 13): the app's template set (``org_roles.org_id IS NULL``, seeded
``admin`` and ``member``), which every org has, plus custom roles an org adds for
itself, usable in that org only and never named like a template role."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from oneauth import audit
from oneauth.errors import RoleExists, RoleNotFound, ValidationFailed
from oneauth.orgs import names
from oneauth.orgs.actor import Actor
from oneauth.orgs.model import audit_fields, require_org


@dataclass(frozen=True, slots=True)
class OrgRole:
    id: uuid.UUID
    name: str
    description: str
    permissions: list[str]
    # None: one of the app's template roles (every org has it).
    org_id: str | None

    @property
    def custom(self) -> bool:
        return self.org_id is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "description": self.description,
            "permissions": self.permissions,
            "custom": self.custom,
        }


# --- org roles -----------------------------------------------------------------------

_SELECT_ORG_ROLES = """
SELECT r.id, r.name, r.description,
       coalesce(array_agg(p.permission ORDER BY p.permission)
                FILTER (WHERE p.permission IS NOT NULL), '{}') AS permissions,
       r.org_id
FROM org_roles r LEFT JOIN org_role_permissions p ON p.org_role_id = r.id
"""


def _org_role(row: asyncpg.Record) -> OrgRole:
    return OrgRole(
        row["id"], row["name"], row["description"], list(row["permissions"]), row["org_id"]
    )


async def org_roles(conn: asyncpg.Connection, org_id: str | None) -> list[OrgRole]:
    """The roles usable in an org: the app's template roles and the org's own.
    ``org_id=None``: the template roles only."""
    rows = await conn.fetch(
        _SELECT_ORG_ROLES + " WHERE r.org_id IS NULL OR r.org_id = $1"
        " GROUP BY r.id ORDER BY r.org_id NULLS FIRST, r.name",
        org_id,
    )
    return [_org_role(r) for r in rows]


async def role_ids(
    conn: asyncpg.Connection, org_id: str, role_names: Iterable[str], *, field: str = "roles"
) -> list[uuid.UUID]:
    """Ids of org roles usable in this org (template or its own); ``RoleNotFound``
    for any other name, including another org's custom role."""
    wanted = sorted({names.role_name(n, field) for n in role_names})
    if not wanted:
        return []
    rows = await conn.fetch(
        "SELECT id, name FROM org_roles WHERE name = ANY($2::text[])"
        " AND (org_id IS NULL OR org_id = $1)",
        org_id,
        wanted,
    )
    missing = sorted(set(wanted) - {r["name"] for r in rows})
    if missing:
        raise RoleNotFound(
            f"no org role {', '.join(missing)} in this organization", extra={"field": field}
        )
    return [r["id"] for r in rows]


async def _lock_org_role_names(conn: asyncpg.Connection) -> None:
    # Template and custom names must never meet, and no unique index spans
    # both: creating either kind takes this lock of the app (schema) first.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':org_role_names'))"
    )


async def create_org_role(
    conn: asyncpg.Connection,
    org_id: str | None,
    name: str,
    permissions: Iterable[str] = (),
    *,
    description: str = "",
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> OrgRole:
    """A custom role of one org (``org_id``) or, with None, a template role of the app.

    Permissions must exist in the app already: an org cannot add words to the
    app's vocabulary. A custom name never equals a template name, and a
    template name never equals any org's custom name.
    """
    name = names.role_name(name, "name")
    text = names.description(description)
    perms = sorted({names.permission_name(p, "permissions") for p in permissions})
    org = await require_org(conn, org_id) if org_id is not None else None
    await _lock_org_role_names(conn)
    clash = await conn.fetchval(
        "SELECT 1 FROM org_roles WHERE name = $1 AND (org_id IS NULL OR org_id = $2"
        " OR $2::text IS NULL)",
        name,
        org.id if org else None,
    )
    if clash:
        raise RoleExists(
            f"{name!r} is already an org role here"
            + (" (a template role)" if org else " (or a custom role of an organization)"),
            extra={"field": "name"},
        )
    known = {
        r["name"]
        for r in await conn.fetch(
            "SELECT name FROM permissions WHERE name = ANY($1::text[])", perms
        )
    }
    unknown = sorted(set(perms) - known)
    if unknown:
        raise ValidationFailed(
            f"unknown permission {', '.join(unknown)}; the operator creates permissions "
            "with app roles",
            extra={"field": "permissions"},
        )
    role_id = await conn.fetchval(
        "INSERT INTO org_roles (org_id, name, description) VALUES ($1, $2, $3) RETURNING id",
        org.id if org else None,
        name,
        text,
    )
    await conn.execute(
        "INSERT INTO org_role_permissions (org_role_id, permission) SELECT $1, unnest($2::text[])",
        role_id,
        perms,
    )
    await audit.record(
        conn,
        "org.role.create",
        "success",
        meta,
        actor_type=actor.type,
        actor_id=actor.id,
        target_type="organization" if org else "org_role_template",
        target_id=org.id if org else name,
        details={"role": name, "permissions": perms},
    )
    row = await conn.fetchrow(_SELECT_ORG_ROLES + " WHERE r.id = $1 GROUP BY r.id", role_id)
    assert row is not None
    return _org_role(row)


async def create_custom_role(
    conn: asyncpg.Connection,
    org_id: str,
    name: str,
    permissions: Iterable[str] = (),
    *,
    description: str = "",
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> OrgRole:
    """A role of this org only (see ``create_org_role``)."""
    return await create_org_role(
        conn, org_id, name, permissions, description=description, actor=actor, meta=meta
    )


async def delete_custom_role(
    conn: asyncpg.Connection,
    org_id: str,
    name: str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> None:
    """Delete one of the org's own roles (members lose it); template roles stay."""
    org = await require_org(conn, org_id)
    name = names.role_name(name, "name")
    gone = await conn.fetchval(
        "DELETE FROM org_roles WHERE org_id = $1 AND name = $2 RETURNING id", org.id, name
    )
    if gone is None:
        raise RoleNotFound(
            f"this organization has no custom role {name!r}", extra={"field": "name"}
        )
    await audit.record(
        conn,
        "org.role.delete",
        "success",
        meta,
        **audit_fields(actor, org.id),
        details={"role": name},
    )
