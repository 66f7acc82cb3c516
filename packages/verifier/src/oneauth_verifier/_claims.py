"""Access-token claims: the validated, typed view and the rules that produce it.

The rules are RFC 9068 §4 (JWT access tokens) on top of RFC 7519 §4.1, plus
oneauth's own ``app_id`` binding. They run only after the signature has been
verified, but are still strict about types: a claim of the wrong type is a
bug or an attack, and either way the token is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._access import AccessRequirement
from ._stepup import AuthRequirement
from .errors import (
    InvalidAudience,
    InvalidClaims,
    InvalidIssuer,
    TokenExpired,
    TokenNotYetValid,
    WrongApp,
)

__all__ = ["AccessTokenClaims", "ClaimsPolicy"]

# bool is an int subclass; exact type checks keep `"exp": true` out.
_NUMBER = (int, float)
# 9999-12-31T23:59:59Z. Rejects inf (json parses 1e400 as inf) and absurd values.
_MAX_TIME = 253402300799
_CLIENT_GRANT = "client_credentials"
_SCOPE_CACHE_SIZE = 256


# Not slots=True: _from_fields needs an instance __dict__.
@dataclass(frozen=True)
class AccessTokenClaims:
    """A verified oneauth access token.

    ``is_client_token`` is true for client-credentials tokens, which act for
    the client itself (``sub == client_id``), not for a user.

    Roles and organizations (issue 13): ``roles`` are the user's app roles;
    ``permissions`` the permissions they bundle, present only when the client
    asked (scope ``permissions``) or the app sends them always; an org-scoped
    token names its organization (``org_id``, ``org_slug``) with the member's
    ``org_roles`` and ``org_permissions``. A client registered for an org has
    ``org_id`` and ``org_slug`` only. Check them with :meth:`require_access`
    (or ``require(...)`` in :mod:`oneauth_verifier.starlette`).
    """

    sub: str
    iss: str
    aud: tuple[str, ...]
    exp: float
    iat: float
    nbf: float | None
    jti: str
    client_id: str
    app_id: str
    scopes: frozenset[str]
    sid: str | None
    amr: tuple[str, ...]
    acr: str | None
    auth_time: float | None
    roles: frozenset[str]
    email_verified: bool | None
    is_client_token: bool
    raw: Mapping[str, Any] = field(repr=False, compare=False, hash=False)
    permissions: frozenset[str] = frozenset()
    org_id: str | None = None
    org_slug: str | None = None
    org_roles: frozenset[str] = frozenset()
    org_permissions: frozenset[str] = frozenset()

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> AccessTokenClaims:
        """Build from a complete field dict, skipping the generated ``__init__``.

        A frozen dataclass's ``__init__`` pays one ``object.__setattr__`` per
        field, about 1 µs here: a sixth of the non-crypto cost of a
        verification. ``fields`` must hold exactly the dataclass fields (a
        test pins this); the instance is as immutable as any other.
        """
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", fields)
        return obj

    def has_scope(self, *scopes: str) -> bool:
        """True if the token grants every one of ``scopes`` (RFC 6749 §3.3)."""
        return self.scopes.issuperset(scopes)

    def has_role(self, *roles: str) -> bool:
        """True if the subject holds every one of ``roles``."""
        return self.roles.issuperset(roles)

    def has_permission(self, *permissions: str) -> bool:
        """True if the token carries every one of these app ``permissions``."""
        return self.permissions.issuperset(permissions)

    def has_org_role(self, *roles: str) -> bool:
        """True if the token is org-scoped and the member holds every one of ``roles``."""
        return self.org_id is not None and self.org_roles.issuperset(roles)

    def has_org_permission(self, *permissions: str) -> bool:
        """True if the token is org-scoped and carries every one of these org permissions."""
        return self.org_id is not None and self.org_permissions.issuperset(permissions)

    def in_org(self, org: str | None = None) -> bool:
        """True if the token is for an organization: any (``org`` None), or this one
        (an org id, ``org_...``, or a slug)."""
        if self.org_id is None:
            return False
        if org is None:
            return True
        return org == (self.org_id if org.startswith("org_") else self.org_slug)

    def require_access(
        self,
        *,
        role: str | Iterable[str] = (),
        permission: str | Iterable[str] = (),
        org: bool | str = False,
        org_role: str | Iterable[str] = (),
        org_permission: str | Iterable[str] = (),
    ) -> AccessTokenClaims:
        """Demand roles, permissions and an organization; returns ``self`` if met.

        Raises :class:`InsufficientScope` (``check``: ``"role"``,
        ``"permission"``, ``"org"``, ``"org_role"``, ``"org_permission"``).
        A resource checking the same demand on every request builds one
        :class:`AccessRequirement` and calls its ``check``.
        """
        AccessRequirement(
            role=role,
            permission=permission,
            org=org,
            org_role=org_role,
            org_permission=org_permission,
        ).check(self)
        return self

    def require(
        self,
        *,
        acr: str | Iterable[str] | None = None,
        amr: str | Iterable[str] | None = None,
        max_age: int | None = None,
        now: float | None = None,
    ) -> AccessTokenClaims:
        """Demand a kind of sign-in (RFC 9470); returns ``self`` if met.

        ``acr``: any one of these values; ``amr``: all of these methods
        (``"mfa"`` for a second factor); ``max_age``: seconds since
        ``auth_time``. Raises :class:`InsufficientUserAuthentication` naming
        what is needed. A resource checking the same demand on every request
        builds one :class:`AuthRequirement` and calls its ``check``.
        """
        AuthRequirement(acr=acr, amr=amr, max_age=max_age).check(self, now=now)
        return self


_EMPTY: frozenset[str] = frozenset()


def _all_str(values: list[Any]) -> bool:
    # str.join type-checks every element in C; much cheaper than a generator
    # on the per-request path.
    try:
        "".join(values)
    except TypeError:
        return False
    return True


class ClaimsPolicy:
    """The claim checks of one verifier: issuer, audience, app and clock skew."""

    __slots__ = ("_app_id", "_audience", "_issuer", "_leeway", "_scope_sets")

    def __init__(self, issuer: str, audience: str, app_id: str, leeway: int) -> None:
        self._issuer = issuer
        self._audience = audience
        self._app_id = app_id
        self._leeway = leeway
        # A resource server sees a handful of distinct scope strings; parsing
        # each once keeps split() and frozenset() off the per-request path.
        self._scope_sets: dict[str, frozenset[str]] = {}

    def _parse_scope(self, scope: str) -> frozenset[str]:
        if len(self._scope_sets) >= _SCOPE_CACHE_SIZE:
            self._scope_sets.clear()
        # RFC 6749 §3.3: space-delimited, case-sensitive scope tokens.
        scopes = self._scope_sets[scope] = frozenset(scope.split())
        return scopes

    def validate(self, claims: dict[str, Any], now: float) -> AccessTokenClaims:
        """Apply RFC 9068 §4 steps 3-6 and oneauth's ``app_id`` rule."""
        get = claims.get
        # Exact string match, no normalisation (RFC 9068 §4 step 3,
        # OIDC Discovery §4.3): each app has its own issuer.
        if get("iss") != self._issuer:
            raise InvalidIssuer("issuer mismatch")

        # RFC 9068 §4 step 4, RFC 7519 §4.1.3: aud is a string or an array.
        aud = get("aud")
        if type(aud) is str:
            if aud != self._audience:
                raise InvalidAudience("audience mismatch")
            auds: tuple[str, ...] = (aud,)
        elif type(aud) is list and self._audience in aud and _all_str(aud):
            auds = tuple(aud)
        else:
            raise InvalidAudience("audience mismatch")

        leeway = self._leeway
        # RFC 7519 §4.1.4, required by RFC 9068 §2.2. Comparisons are written
        # so that NaN fails them.
        exp: Any = get("exp")
        if type(exp) not in _NUMBER or not exp < _MAX_TIME:
            raise InvalidClaims("exp missing or invalid", check="exp")
        if not now - leeway < exp:
            raise TokenExpired("token expired")

        # RFC 7519 §4.1.5.
        nbf: Any = get("nbf")
        if nbf is not None:
            if type(nbf) not in _NUMBER:
                raise InvalidClaims("nbf invalid", check="nbf")
            if not nbf <= now + leeway:
                raise TokenNotYetValid("token not yet valid")

        # RFC 9068 §2.2 requires iat; one from the future means a broken
        # issuer clock or a forged timeline.
        iat: Any = get("iat")
        if type(iat) not in _NUMBER or not iat <= now + leeway:
            raise InvalidClaims("iat missing or in the future", check="iat")

        if get("app_id") != self._app_id:
            raise WrongApp("token belongs to another app")

        # RFC 9068 §2.2: sub, client_id and jti are required.
        sub = get("sub")
        client_id = get("client_id")
        jti = get("jti")
        if not (
            type(sub) is str
            and sub
            and type(client_id) is str
            and client_id
            and type(jti) is str
            and jti
        ):
            raise InvalidClaims("sub, client_id or jti missing")

        is_client = get("grant") == _CLIENT_GRANT
        if is_client and sub != client_id:
            raise InvalidClaims("client token whose sub is not its client_id")

        # Optional claims: absent is fine, the wrong type is not.
        scope = get("scope")
        roles = get("roles")
        amr = get("amr")
        acr = get("acr")
        sid = get("sid")
        auth_time = get("auth_time")
        email_verified = get("email_verified")
        permissions = get("permissions")
        org_id = get("org_id")
        org_slug = get("org_slug")
        org_roles = get("org_roles")
        org_permissions = get("org_permissions")
        if (
            (scope is not None and type(scope) is not str)
            or (roles is not None and type(roles) is not list)
            or (amr is not None and type(amr) is not list)
            or (acr is not None and type(acr) is not str)
            or (sid is not None and type(sid) is not str)
            or (auth_time is not None and type(auth_time) not in _NUMBER)
            or (email_verified is not None and type(email_verified) is not bool)
            or (permissions is not None and type(permissions) is not list)
            or (org_id is not None and (type(org_id) is not str or not org_id))
            or (org_slug is not None and type(org_slug) is not str)
            or (org_roles is not None and type(org_roles) is not list)
            or (org_permissions is not None and type(org_permissions) is not list)
        ):
            raise InvalidClaims("optional claim with the wrong type")
        if org_id is None and (org_slug is not None or org_roles or org_permissions):
            # Org roles without the org they belong to: a forged or broken token.
            raise InvalidClaims("org claims without org_id")
        try:
            # str.join type-checks every element in C; a generator with
            # isinstance would cost more than the rest of this method.
            if roles:
                "".join(roles)
            if amr:
                "".join(amr)
            if permissions:
                "".join(permissions)
            if org_roles:
                "".join(org_roles)
            if org_permissions:
                "".join(org_permissions)
        except TypeError:
            raise InvalidClaims(
                "roles, amr, permissions, org_roles and org_permissions must be lists of strings"
            ) from None
        scopes = _EMPTY
        if scope:
            known = self._scope_sets.get(scope)
            scopes = known if known is not None else self._parse_scope(scope)

        return AccessTokenClaims._from_fields(
            {
                "sub": sub,
                "iss": self._issuer,
                "aud": auds,
                "exp": exp,
                "iat": iat,
                "nbf": nbf,
                "jti": jti,
                "client_id": client_id,
                "app_id": self._app_id,
                "scopes": scopes,
                "sid": sid,
                "amr": tuple(amr) if amr else (),
                "acr": acr,
                "auth_time": auth_time,
                "roles": frozenset(roles) if roles else _EMPTY,
                "email_verified": email_verified,
                "is_client_token": is_client,
                "raw": MappingProxyType(claims),
                "permissions": frozenset(permissions) if permissions else _EMPTY,
                "org_id": org_id,
                "org_slug": org_slug,
                "org_roles": frozenset(org_roles) if org_roles else _EMPTY,
                "org_permissions": frozenset(org_permissions) if org_permissions else _EMPTY,
            }
        )
