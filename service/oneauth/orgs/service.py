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
import uuid
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import asyncpg

from oneauth import audit, webhooks
from oneauth.errors import OrgSlugTaken, ValidationFailed
from oneauth.orgs import names
from oneauth.orgs.actor import Actor
from oneauth.orgs.members import (
    MANAGE_MEMBERS,
    Member,
    Membership,
    add_member,
    check_grantable,
    default_role_ids,
    join,
    managers,
    members,
    membership,
    remove_member,
    require,
    set_member_roles,
)
from oneauth.orgs.model import (
    ADMIN_ROLE,
    BRANDING_KEYS,
    JOIN_POLICIES,
    MAX_PAGE,
    MEMBER_ROLE,
    ORG_COLUMNS,
    JoinedVia,
    JoinPolicy,
    Org,
    audit_fields,
    by_slug,
    end_sessions,
    get,
    list_all,
    looks_like_org_id,
    new_org_id,
    of_user,
    org_from_row,
    require_org,
)
from oneauth.orgs.org_roles import (
    OrgRole,
    create_custom_role,
    create_org_role,
    delete_custom_role,
    org_roles,
    role_ids,
)
from oneauth.orgs.users import resolve

# The public interface of organizations: one import for the API, the pages, the
# CLI and the token code (``from oneauth.orgs import service as orgs``).
__all__ = [
    "ADMIN_ROLE",
    "BRANDING_KEYS",
    "JOIN_POLICIES",
    "MANAGE_MEMBERS",
    "MAX_PAGE",
    "MEMBER_ROLE",
    "ORG_COLUMNS",
    "UNSET",
    "JoinPolicy",
    "JoinedVia",
    "Member",
    "Membership",
    "Org",
    "OrgRole",
    "add_member",
    "by_slug",
    "check_grantable",
    "create",
    "create_custom_role",
    "create_org_role",
    "default_role_ids",
    "delete",
    "delete_custom_role",
    "get",
    "join",
    "list_all",
    "looks_like_org_id",
    "managers",
    "members",
    "membership",
    "new_org_id",
    "of_user",
    "org_from_row",
    "org_roles",
    "remove_member",
    "require",
    "require_org",
    "resume",
    "role_ids",
    "set_member_roles",
    "suspend",
    "update",
]


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
        **audit_fields(actor, org_id),
        details={"slug": candidate},
    )
    await webhooks.emit(
        conn, webhooks.app_of(conn), "org.created", {"org_id": org_id, "slug": candidate}
    )
    org = await get(conn, org_id)
    assert org is not None
    if creator_user is not None:
        await join(
            conn, org, creator_user.id, roles=[ADMIN_ROLE], via="created", actor=actor, meta=meta
        )
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
            conn, "org.update", "success", meta, **audit_fields(actor, org.id), details=shown
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
            **audit_fields(actor, org.id),
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


async def delete(
    conn: asyncpg.Connection, org_id: str, *, actor: Actor, meta: audit.RequestMeta = audit.SYSTEM
) -> int:
    """Delete an org: end its org-scoped sessions (reason ``org_deleted``), then drop
    it with its members, roles, invitations, domains and org clients. Returns the
    number of sessions ended."""
    org = await require_org(conn, org_id, lock=True)
    ended = await end_sessions(conn, org.id, "org_deleted")
    await conn.execute("DELETE FROM organizations WHERE id = $1", org.id)
    await webhooks.emit(conn, webhooks.app_of(conn), "org.deleted", {"org_id": org.id})
    await audit.record(
        conn,
        "org.delete",
        "success",
        meta,
        **audit_fields(actor, org.id),
        details={"slug": org.slug, "sessions_ended": ended},
    )
    return ended
