"""The admin scope catalogue (issue 15, B4).

An app's admin API is reached with an access token of THAT app carrying these
scopes: a client-credentials token of one of its confidential clients, or a
token the console mints for a signed-in operator (:mod:`oneauth.admin.delegation`).
They are never granted to a user's token: a client whose grants include a
user-facing one (authorization_code, refresh_token) may not hold them
(:func:`check_client_scopes`, called from ``ClientSpec.validated``), so neither
``clients create`` nor an update can make a user token an admin token.

One scope per area and verb (least privilege); every admin route declares
exactly one (:func:`oneauth.admin.guard.admin_operation`).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ADMIN_PREFIX",
    "APP_ADMIN_SCOPES",
    "PLATFORM_PREFIX",
    "PLATFORM_SCOPES",
    "READ_SCOPES",
    "check_client_scopes",
    "scopes_for_role",
]

ADMIN_PREFIX = "admin:"
PLATFORM_PREFIX = "platform:"

APP_ADMIN_SCOPES = frozenset(
    {
        "admin:users:read",
        "admin:users:write",
        "admin:roles:read",
        "admin:roles:write",
        "admin:orgs:read",
        "admin:orgs:write",
        "admin:clients:read",
        "admin:clients:write",
        "admin:providers:read",
        "admin:providers:write",
        "admin:keys:read",
        "admin:keys:write",
        "admin:settings:read",
        "admin:settings:write",
        "admin:audit:read",
        "admin:webhooks:read",
        "admin:webhooks:write",
    }
)
PLATFORM_SCOPES = frozenset({"platform:apps:read", "platform:apps:write"})
# What a console operator with the "viewer" role may do in an app.
READ_SCOPES = frozenset(s for s in APP_ADMIN_SCOPES if s.endswith(":read"))

# Grants that put a user behind the token: admin scopes are never granted to them.
_USER_GRANTS = frozenset({"authorization_code", "refresh_token"})

# Console roles (oneauth.console_grants.role) and the app admin scopes each allows.
_ROLE_SCOPES = {"viewer": READ_SCOPES, "admin": APP_ADMIN_SCOPES}


def scopes_for_role(role: str | None) -> frozenset[str]:
    """The app admin scopes a console grant role allows (none for an unknown role)."""
    return _ROLE_SCOPES.get(role or "", frozenset())


def check_client_scopes(
    scopes: Iterable[str], grant_types: Iterable[str], *, org_client: bool = False
) -> str | None:
    """Why a client registration may not hold these scopes, or None when it may.

    Admin scopes: only the catalogue's names, and only for a client whose one
    grant is client_credentials (a user-facing grant would let a user's token
    carry them), never for an org client (admin scopes reach the whole app, an
    org client is for one organization).
    """
    wanted = set(scopes)
    admin = {s for s in wanted if s.startswith(ADMIN_PREFIX)}
    if not admin:
        return None
    unknown = admin - APP_ADMIN_SCOPES
    if unknown:
        return (
            f"unknown admin scope(s) {', '.join(sorted(unknown))}; the admin scopes are"
            f" {', '.join(sorted(APP_ADMIN_SCOPES))}"
        )
    if set(grant_types) & _USER_GRANTS or "client_credentials" not in set(grant_types):
        return (
            "admin scopes are granted only to a client_credentials client"
            " (--grant client_credentials alone), never to a user-facing grant"
        )
    if org_client:
        return "admin scopes reach the whole app: an org client (--org) may not hold them"
    return None
