"""What an access token says about a user's roles and organization (issue 13).

``for_user`` reads, in ONE query, the user's app roles (always), the
permissions those roles bundle (when the client asked: scope ``permissions``
or the app's ``token_permissions`` policy), and, for an org-scoped token, the
org's id and slug with the member's org roles and org permissions. The same
query checks that the org exists in this app, is active and has the user as a
member; otherwise ``OrgUnavailable`` (one answer for the three, so the answer
never tells a non-member whether an org exists). The connection is in the
app's context, so an org id or slug of another app names nothing here (B1).

Every token issue recomputes these (sign-in, code exchange, every refresh): a
role removed, a membership ended or an org suspended shows at the next refresh
at the latest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from oneauth.errors import OrgUnavailable

__all__ = [
    "PERMISSIONS_SCOPE",
    "Claims",
    "OrgUnavailable",
    "for_user",
    "roles_of",
    "wants_permissions",
]

# The scope a client asks for to get the ``permissions`` claim.
PERMISSIONS_SCOPE = "permissions"

Reason = Literal["unknown", "suspended", "not_member"]


@dataclass(frozen=True, slots=True)
class Claims:
    """Sorted and de-duplicated; ``permissions`` None when not asked for."""

    roles: tuple[str, ...]
    permissions: tuple[str, ...] | None = None
    org_id: str | None = None
    org_slug: str | None = None
    org_roles: tuple[str, ...] = ()
    org_permissions: tuple[str, ...] = ()
    # The org asks its members for a second factor (not a claim: who issues checks it).
    org_mfa_required: bool = False

    def token_claims(self) -> dict[str, Any]:
        """The members an access token carries; empty lists are left out (small tokens)."""
        out: dict[str, Any] = {}
        if self.roles:
            out["roles"] = list(self.roles)
        if self.permissions:
            out["permissions"] = list(self.permissions)
        if self.org_id is not None:
            out["org_id"] = self.org_id
            out["org_slug"] = self.org_slug
            if self.org_roles:
                out["org_roles"] = list(self.org_roles)
            if self.org_permissions:
                out["org_permissions"] = list(self.org_permissions)
        return out


def wants_permissions(scope: str, policy_default: bool) -> bool:
    """Whether a token for ``scope`` carries ``permissions``."""
    return policy_default or PERMISSIONS_SCOPE in scope.split()


class OrgRefused(OrgUnavailable):
    """``OrgUnavailable`` with the reason, for the audit row only (never shown)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__()
        self.reason: Reason = reason


def roles_of(user: str) -> str:
    """The user's app roles as one SQL expression (a sorted text[]); ``user`` is the
    SQL of the user's id. The refresh rotation reads them in its own statement."""
    return f"""ARRAY(SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id
        WHERE ur.user_id = {user} ORDER BY r.name)"""


# One round trip. ``one`` is a single row that the org and membership join to,
# so a user without an org (or an unknown org) still gets their roles. A custom
# org role counts only inside its own org (defence in depth: the service never
# assigns another org's custom role, but the token must not depend on that).
#
# One fixed text per shape (permissions or not; no org, org by id, org by slug)
# rather than one text whose parameters switch parts off (``CASE WHEN $2``,
# ``o.id = $3 OR o.slug = $4`` with one of them NULL): Postgres folds a NULL or
# false parameter away in a custom plan, finds that cheaper than the generic
# plan, and so re-plans the whole statement on every execution. That planning
# was ~0.8 ms of Postgres CPU per refresh on the soak machine, more than the
# rotation itself (pg_stat_statements: plans == calls). Each text here gets a
# generic plan after five executions and keeps it.

_ROLES = roles_of("$1") + " AS roles"
_PERMISSIONS = """ARRAY(SELECT DISTINCT rp.permission FROM user_roles ur
        JOIN role_permissions rp ON rp.role_id = ur.role_id
        WHERE ur.user_id = $1 ORDER BY 1) AS permissions"""
_ORG = """o.id AS org_id, o.slug AS org_slug, o.status AS org_status, o.mfa_required AS org_mfa,
  m.user_id IS NOT NULL AS member,
  ARRAY(SELECT r.name FROM org_member_roles mr JOIN org_roles r ON r.id = mr.org_role_id
        WHERE mr.org_id = m.org_id AND mr.user_id = m.user_id
          AND (r.org_id IS NULL OR r.org_id = mr.org_id) ORDER BY r.name) AS org_roles,
  ARRAY(SELECT DISTINCT p.permission FROM org_member_roles mr
        JOIN org_roles r ON r.id = mr.org_role_id
        JOIN org_role_permissions p ON p.org_role_id = mr.org_role_id
        WHERE mr.org_id = m.org_id AND mr.user_id = m.user_id
          AND (r.org_id IS NULL OR r.org_id = mr.org_id) ORDER BY 1) AS org_permissions
FROM (SELECT) AS one
LEFT JOIN organizations o ON o.{key} = $2
LEFT JOIN org_members m ON m.org_id = o.id AND m.user_id = $1"""

OrgKey = Literal["id", "slug"] | None


def _claims_sql(permissions: bool, org_key: OrgKey) -> str:
    perms = _PERMISSIONS if permissions else "NULL::text[] AS permissions"
    org = "" if org_key is None else ",\n  " + _ORG.format(key=org_key)
    return f"SELECT\n  {_ROLES},\n  {perms}{org}\n"


_CLAIMS: dict[tuple[bool, OrgKey], str] = {
    (perms, key): _claims_sql(perms, key) for perms in (False, True) for key in (None, "id", "slug")
}


async def for_user(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    org_id: str | None = None,
    org_slug: str | None = None,
    permissions: bool = False,
) -> Claims:
    """The user's claims, org-scoped when ``org_id`` (or ``org_slug``) is given.

    Raises ``OrgUnavailable`` (``OrgRefused`` with the reason) when the org is
    unknown in this app, suspended, or the user is not a member.
    """
    if org_id is not None:
        row = await conn.fetchrow(_CLAIMS[permissions, "id"], user_id, org_id)
    elif org_slug is not None:
        row = await conn.fetchrow(_CLAIMS[permissions, "slug"], user_id, org_slug)
    else:
        row = await conn.fetchrow(_CLAIMS[permissions, None], user_id)
    assert row is not None  # ``one`` always yields a row
    found: Claims = Claims(
        roles=tuple(row["roles"]),
        permissions=None if row["permissions"] is None else tuple(row["permissions"]),
    )
    if org_id is None and org_slug is None:
        return found
    if row["org_id"] is None:
        raise OrgRefused("unknown")
    if row["org_status"] != "active":
        raise OrgRefused("suspended")
    if not row["member"]:
        raise OrgRefused("not_member")
    return Claims(
        roles=found.roles,
        permissions=found.permissions,
        org_id=row["org_id"],
        org_slug=row["org_slug"],
        org_roles=tuple(row["org_roles"]),
        org_permissions=tuple(row["org_permissions"]),
        org_mfa_required=row["org_mfa"],
    )


# A client registered for one org (clients.org_id): its own tokens carry that
# org's id and slug, and none while the org is suspended.
_CLIENT_ORG = "SELECT slug, status FROM organizations WHERE id = $1"


async def for_client(conn: asyncpg.Connection, org_id: str) -> Claims:
    """Claims of a client-credentials token of an org client; ``OrgUnavailable``
    when the org is suspended (or gone: the client is deleted with it)."""
    row = await conn.fetchrow(_CLIENT_ORG, org_id)
    if row is None:
        raise OrgRefused("unknown")
    if row["status"] != "active":
        raise OrgRefused("suspended")
    return Claims(roles=(), org_id=org_id, org_slug=row["slug"])
