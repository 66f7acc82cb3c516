"""Authorization demands on app roles, permissions and organizations (issue 13).

A resource may need more than a scope: an app role (``roles``), an app
permission (``permissions``, in tokens whose client asked for them), a token
for an organization (``org_id``: any org, or a given one), an org role
(``org_roles``) or an org permission (``org_permissions``). Prefer
permissions over role names: an app may rename or rebuild its roles, a
permission name is the contract. :class:`AccessRequirement` states the demand
once; a refusal is :class:`~oneauth_verifier.errors.InsufficientScope`
(RFC 6750 §3.1 ``insufficient_scope``, 403) whose ``check`` says what was
missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InsufficientScope

if TYPE_CHECKING:
    from ._claims import AccessTokenClaims

__all__ = ["AccessRequirement"]


def _names(value: str | Iterable[str]) -> frozenset[str]:
    names = value.split() if isinstance(value, str) else list(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError("role and permission names must be non-empty strings")
    return frozenset(names)


@dataclass(frozen=True, slots=True, init=False)
class AccessRequirement:
    """What a resource demands of the token's roles, permissions and organization.

    Every listed name is required (all of them). ``org``: ``True`` for a token
    of any organization, an org id (``org_...``) or slug for that one, False
    for no demand; ``org_path_param``: the path parameter that must equal the
    token's ``org_id`` (``/orgs/{org_id}/invoices``), so a member of one org
    cannot reach another org's URL with their token. Any org demand (an org
    role, an org permission, a path parameter) implies ``org=True``.
    """

    roles: frozenset[str]
    permissions: frozenset[str]
    org: bool | str
    org_roles: frozenset[str]
    org_permissions: frozenset[str]
    org_path_param: str | None

    def __init__(
        self,
        *,
        role: str | Iterable[str] = (),
        permission: str | Iterable[str] = (),
        org: bool | str = False,
        org_role: str | Iterable[str] = (),
        org_permission: str | Iterable[str] = (),
        org_path_param: str | None = None,
    ) -> None:
        if isinstance(org, str) and not org:
            raise ValueError("org must be True, an org id or a slug")
        set_ = object.__setattr__
        set_(self, "roles", _names(role))
        set_(self, "permissions", _names(permission))
        set_(self, "org_roles", _names(org_role))
        set_(self, "org_permissions", _names(org_permission))
        set_(self, "org_path_param", org_path_param)
        implied = bool(self.org_roles or self.org_permissions or org_path_param)
        set_(self, "org", org if org is not False else implied)

    @property
    def empty(self) -> bool:
        return not (self.roles or self.permissions or self.org)

    def check(
        self, claims: AccessTokenClaims, *, path_params: Mapping[str, object] | None = None
    ) -> None:
        """Raise :class:`InsufficientScope` unless ``claims`` meet every demand."""
        if not claims.roles.issuperset(self.roles):
            raise InsufficientScope("subject lacks a required role", check="role")
        if not claims.permissions.issuperset(self.permissions):
            # Absent unless asked for: the client requests scope "permissions".
            raise InsufficientScope("token lacks a required permission", check="permission")
        if self.org is False:
            return
        wanted = None if self.org is True else self.org
        if not claims.in_org(wanted):
            raise InsufficientScope(
                "a token for the organization is required"
                if wanted is not None
                else "a token for an organization is required",
                check="org",
            )
        if self.org_path_param is not None:
            value = (path_params or {}).get(self.org_path_param)
            if value is None or str(value) != claims.org_id:
                raise InsufficientScope(
                    "the token is for another organization than this URL's", check="org"
                )
        if not claims.org_roles.issuperset(self.org_roles):
            raise InsufficientScope("member lacks a required organization role", check="org_role")
        if not claims.org_permissions.issuperset(self.org_permissions):
            raise InsufficientScope(
                "member lacks a required organization permission", check="org_permission"
            )
