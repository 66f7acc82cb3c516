"""The organization an authorization request is for (issue 13): reads of the app's
own schema, run inside the router's app transaction.

An org id or slug names a row of THIS app's schema only, so an org of another
app is simply not found here (B1). Every lookup is joined to the signed-in
user's membership: to a user who is not a member, an org that exists and one
that does not look the same (the request learns nothing about orgs it cannot use).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from oneauth.web.render import valid_color, valid_logo_url

# The SQL checks of sql/app/0014_organizations.sql, checked before any lookup
# (a malformed value is an invalid_request, not an unknown org).
ORG_ID = re.compile(r"org_[A-Za-z0-9_-]{16,64}")
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
# The picker lists at most this many (a user in more chooses by the client's
# organization_id or organization:<slug> instead).
PICKER_LIMIT = 200


@dataclass(frozen=True, slots=True)
class MemberOrg:
    """An org the user is a member of, with what the hosted pages show of it."""

    id: str
    slug: str
    name: str
    active: bool
    mfa_required: bool
    display_name: str
    logo_url: str | None
    color: str | None


def _of(row: asyncpg.Record) -> MemberOrg:
    branding: Any = row["branding"]
    if isinstance(branding, str):
        branding = json.loads(branding)
    if not isinstance(branding, dict):
        branding = {}
    shown = branding.get("display_name")
    # Validated again here (the service validates on write): nothing but a plain
    # string, an https URL and #rrggbb reaches the page.
    display = shown if isinstance(shown, str) and 0 < len(shown) <= 200 else row["name"]
    return MemberOrg(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        active=row["status"] == "active",
        mfa_required=row["mfa_required"],
        display_name=display,
        logo_url=valid_logo_url(branding.get("logo_url")),
        color=valid_color(branding.get("primary_color")),
    )


_COLUMNS = "o.id, o.slug, o.name, o.status, o.mfa_required, o.branding::text AS branding"


async def member_org(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    org_id: str | None = None,
    slug: str | None = None,
) -> MemberOrg | None:
    """The org named by id or slug if ``user_id`` is a member of it (active or not),
    else None (unknown, another app's, or not a member: one answer). One read."""
    if org_id is None and slug is None:
        return None
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM organizations o"
        " JOIN org_members m ON m.org_id = o.id AND m.user_id = $1"
        " WHERE ($2::text IS NULL OR o.id = $2) AND ($3::text IS NULL OR o.slug = $3)",
        user_id,
        org_id,
        slug,
    )
    return _of(row) if row is not None else None


async def active_orgs_of(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[MemberOrg]:
    """The active orgs ``user_id`` belongs to, by name (what the picker offers). One read."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM organizations o"
        " JOIN org_members m ON m.org_id = o.id AND m.user_id = $1"
        " WHERE o.status = 'active' ORDER BY o.name, o.slug LIMIT $2",
        user_id,
        PICKER_LIMIT,
    )
    return [_of(r) for r in rows]
