"""Organizations, their members and org roles (issue 13).

An org is a customer tenant inside one app: its id (``org_`` + random) and
slug mean something in this app's schema only, so app B never sees, finds or
uses app A's orgs (B1). Members hold org roles: the app's template set
(``org_roles.org_id IS NULL``, seeded with ``admin`` and ``member``) plus the
org's own custom roles, which are usable in that org only and never share a
name with a template role.

Managing an org is checked against permission names (``org:members:write``,
``org:invitations:write``, ``org:settings:write``), never role names
(``require``): an app may rebuild its roles freely.

Every change is audited with its actor (A1) in the same transaction. Ending a
membership or an org ends the refresh families scoped to it in that
transaction too (S3); access tokens already issued live out their short TTL.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import asyncpg

from oneauth import audit
from oneauth.errors import (
    AlreadyMember,
    LastOrgManager,
    MemberNotFound,
    OrgNotFound,
    OrgPermissionRequired,
    OrgSlugTaken,
    OrgSuspended,
    RoleExists,
    RoleNotFound,
    ValidationFailed,
)
from oneauth.orgs import names
from oneauth.orgs.actor import Actor
from oneauth.orgs.users import resolve

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


# --- creating and changing orgs ---------------------------------------------------


def _audit_fields(actor: Actor, org_id: str) -> dict[str, Any]:
    return {
        "actor_type": actor.type,
        "actor_id": actor.id,
        "target_type": "organization",
        "target_id": org_id,
    }


async def create(
    conn: asyncpg.Connection,
    *,
    name: str,
    slug: str | None = None,
    creator: uuid.UUID | str | None = None,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Org:
    """Create an org. Without ``slug`` one is derived from the name (``acme-2`` if
    ``acme`` is taken); a given slug that is taken is ``OrgSlugTaken``.
    ``creator``: a user who joins at once with the template role ``admin``."""
    display = names.org_name(name)
    creator_user = await resolve(conn, creator) if creator is not None else None
    if slug is not None:
        candidates = [names.slug(slug)]
    else:
        base = names.slug_from(display)
        candidates = [base] + [
            f"{base[: names.SLUG_MAX - len(str(n)) - 1].rstrip('-')}-{n}" for n in range(2, 50)
        ]
    org_id = None
    for candidate in candidates:
        org_id = await conn.fetchval(
            "INSERT INTO organizations (id, slug, name) VALUES ($1, $2, $3)"
            " ON CONFLICT (slug) DO NOTHING RETURNING id",
            new_org_id(),
            candidate,
            display,
        )
        if org_id is not None:
            break
    if org_id is None:
        raise OrgSlugTaken(extra={"field": "slug"})
    assert isinstance(org_id, str)
    await audit.record(
        conn,
        "org.create",
        "success",
        meta,
        **_audit_fields(actor, org_id),
        details={"slug": candidate},
    )
    if creator_user is not None:
        await _join(
            conn, org_id, creator_user.id, await role_ids(conn, org_id, [ADMIN_ROLE]), "created"
        )
        await _audit_member(
            conn, "org.member.add", actor, meta, org_id, creator_user.id, [ADMIN_ROLE], "created"
        )
    org = await get(conn, org_id)
    assert org is not None
    return org


def _branding(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge branding changes; a value None removes the key."""
    result = dict(current)
    for key, value in changes.items():
        field = f"branding.{key}"
        if key not in BRANDING_KEYS:
            raise ValidationFailed(
                f"unknown branding key {key!r}; known: {', '.join(BRANDING_KEYS)}",
                extra={"field": field},
            )
        if value is None:
            result.pop(key, None)
        elif key == "display_name":
            result[key] = names.org_name(value, field)
        elif key == "primary_color":
            result[key] = names.color(value, field)
        else:
            result[key] = _logo_url(value, field)
    return result


def _logo_url(value: Any, field: str) -> str:
    text = value if isinstance(value, str) else ""
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    # https only: the hosted pages load it (no mixed content, no javascript: URLs).
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.hostname
        or len(text) > 2048
        or any(ch.isspace() or ord(ch) < 0x21 for ch in text)
    ):
        raise ValidationFailed(f"{field} must be an https URL", extra={"field": field})
    return text


class _Unset:
    pass


UNSET: Final = _Unset()


async def update(
    conn: asyncpg.Connection,
    org_id: str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
    name: str | None = None,
    slug: str | None = None,
    mfa_required: bool | None = None,
    join_policy: str | None = None,
    default_role: str | _Unset | None = UNSET,
    branding: Mapping[str, Any] | None = None,
) -> Org:
    """Change an org's settings. ``default_role=None`` clears it (new members then
    get the template role ``member``); ``branding`` is merged (None removes a key)."""
    org = await require_org(conn, org_id, lock=True)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = names.org_name(name)
    if slug is not None:
        changes["slug"] = names.slug(slug)
        taken = await conn.fetchval(
            "SELECT 1 FROM organizations WHERE slug = $1 AND id <> $2", changes["slug"], org.id
        )
        if taken:
            raise OrgSlugTaken(extra={"field": "slug"})
    if mfa_required is not None:
        changes["mfa_required"] = bool(mfa_required)
    if join_policy is not None:
        if join_policy not in JOIN_POLICIES:
            raise ValidationFailed(
                "join_policy must be off, offer or automatic", extra={"field": "join_policy"}
            )
        changes["join_policy"] = join_policy
    if not isinstance(default_role, _Unset):
        changes["default_role_id"] = (
            None
            if default_role is None
            else (await role_ids(conn, org.id, [default_role], field="default_role"))[0]
        )
    if branding is not None:
        if not isinstance(branding, Mapping):
            raise ValidationFailed("branding must be an object", extra={"field": "branding"})
        changes["branding"] = json.dumps(_branding(org.branding, branding))
    if changes:
        columns = list(changes)
        assignments = ", ".join(
            f"{c} = ${i + 2}" + ("::jsonb" if c == "branding" else "")
            for i, c in enumerate(columns)
        )
        # Column names come from the fixed set above, never from input.
        await conn.execute(
            f"UPDATE organizations SET {assignments}, updated_at = now() WHERE id = $1",
            org.id,
            *changes.values(),
        )
        shown = {k: v for k, v in changes.items() if k not in ("branding", "default_role_id")}
        if "default_role_id" in changes:
            shown["default_role"] = default_role
        if "branding" in changes:
            shown["branding"] = sorted(branding or {})
        await audit.record(
            conn, "org.update", "success", meta, **_audit_fields(actor, org.id), details=shown
        )
    updated = await get(conn, org.id)
    assert updated is not None
    return updated


async def _set_status(
    conn: asyncpg.Connection, org_id: str, status: str, actor: Actor, meta: audit.RequestMeta
) -> Org:
    org = await require_org(conn, org_id, lock=True)
    if org.status != status:
        await conn.execute(
            "UPDATE organizations SET status = $2, updated_at = now() WHERE id = $1", org.id, status
        )
        await audit.record(
            conn,
            "org.suspend" if status == "suspended" else "org.resume",
            "success",
            meta,
            **_audit_fields(actor, org.id),
        )
    updated = await get(conn, org.id)
    assert updated is not None
    return updated


async def suspend(
    conn: asyncpg.Connection, org_id: str, *, actor: Actor, meta: audit.RequestMeta = audit.SYSTEM
) -> Org:
    """No new org-scoped token from now on (the token paths check the status)."""
    return await _set_status(conn, org_id, "suspended", actor, meta)


async def resume(
    conn: asyncpg.Connection, org_id: str, *, actor: Actor, meta: audit.RequestMeta = audit.SYSTEM
) -> Org:
    return await _set_status(conn, org_id, "active", actor, meta)


async def _end_sessions(
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


async def delete(
    conn: asyncpg.Connection, org_id: str, *, actor: Actor, meta: audit.RequestMeta = audit.SYSTEM
) -> int:
    """Delete an org: end its org-scoped sessions (reason ``org_deleted``), then drop
    it with its members, roles, invitations, domains and org clients. Returns the
    number of sessions ended."""
    org = await require_org(conn, org_id, lock=True)
    ended = await _end_sessions(conn, org.id, "org_deleted")
    await conn.execute("DELETE FROM organizations WHERE id = $1", org.id)
    await audit.record(
        conn,
        "org.delete",
        "success",
        meta,
        **_audit_fields(actor, org.id),
        details={"slug": org.slug, "sessions_ended": ended},
    )
    return ended


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
        **_audit_fields(actor, org.id),
        details={"role": name},
    )


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
        **_audit_fields(actor, org_id),
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
    ended = await _end_sessions(conn, org.id, "org_membership_ended", user.id)
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
