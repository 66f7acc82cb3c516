"""Starlette integration: a bearer-token authentication backend and ``require``.

::

    from starlette.applications import Starlette
    from oneauth_verifier.starlette import OneauthBackend, require

    backend = OneauthBackend(verifier)

    @require(scopes="orders:read")
    async def list_orders(request):
        claims = request.user.claims
        ...

    app = Starlette(routes=[...], middleware=[backend.middleware()])

Error responses follow RFC 6750 §3: 401 with ``WWW-Authenticate: Bearer
error="invalid_token"`` for a bad token, 403 ``insufficient_scope`` for a
good token without the needed scopes or roles, 400 ``invalid_request`` for a
malformed Authorization header, and a bare ``Bearer`` challenge (no error
code, §3.1) when no token was sent. If the issuer's keys cannot be fetched
the answer is 503: the client's token may be fine, so it must not discard it.

Roles, permissions and organizations (issue 13)::

    @require(permission="invoice:read")              # the app permission
    @require(role="billing-admin")                   # an app role
    @require_org(org_permission="org:members:write") # a token for an org, with that right
    @require_org(org_role="admin", path_param="org_id")  # /orgs/{org_id}/...: this org only

answer 403 ``insufficient_scope`` with an ``error_description`` naming what
is missing (a role, a permission, the org, an org role or permission).
``permissions`` are in tokens whose client asked for scope ``permissions``
(or when the app sends them always).

Step-up (RFC 9470): ``require(amr="mfa")``, ``require(acr=...)`` and
``require(max_age=300)`` answer a token whose sign-in falls short with 401
``WWW-Authenticate: Bearer error="insufficient_user_authentication",
error_description="...", acr_values="...", max_age="300"``; the client sends
those ``acr_values`` and ``max_age`` on a new authorization request.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from ._access import AccessRequirement
from ._claims import AccessTokenClaims
from ._stepup import AuthRequirement
from ._verifier import Verifier
from .errors import (
    InsufficientScope,
    InsufficientUserAuthentication,
    JWKSUnavailable,
    VerificationError,
)

__all__ = [
    "BearerAuthError",
    "OneauthBackend",
    "TokenUser",
    "bearer_error_response",
    "on_auth_error",
    "require",
    "require_org",
    "step_up_response",
]

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])

# RFC 6750 §3: error_description and scope values are limited to printable
# ASCII without '"' and '\'.
_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def _quote(value: str) -> str:
    return _UNSAFE.sub("?", value)


class TokenUser(BaseUser):
    """The authenticated caller: a user, or a client acting for itself."""

    def __init__(self, claims: AccessTokenClaims, clock: Callable[[], float] = time.time) -> None:
        self.claims = claims
        # The verifier's clock, so that max_age is judged by the same time as exp.
        self.clock = clock

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.claims.sub

    @property
    def identity(self) -> str:
        return self.claims.sub

    @property
    def is_client(self) -> bool:
        """True for client-credentials tokens (no end user involved)."""
        return self.claims.is_client_token


class BearerAuthError(AuthenticationError):
    """Authentication failed; carries what :func:`on_auth_error` needs to answer."""

    def __init__(
        self,
        description: str,
        *,
        error: str = "invalid_token",
        status_code: int = 401,
        cause: VerificationError | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.error = error
        self.status_code = status_code
        self.cause = cause

    @classmethod
    def from_verification(cls, exc: VerificationError) -> BearerAuthError:
        if isinstance(exc, JWKSUnavailable):
            return cls("issuer keys unavailable", error=exc.error_code, status_code=503, cause=exc)
        return cls(exc.description, error=exc.error_code, cause=exc)


def bearer_error_response(
    status_code: int,
    error: str | None,
    description: str,
    *,
    scope: Iterable[str] = (),
    realm: str | None = None,
    acr_values: Iterable[str] = (),
    max_age: int | None = None,
) -> Response:
    """A JSON error with the RFC 6750 §3 ``WWW-Authenticate`` challenge.

    ``error=None`` means "no credentials were sent": the challenge then
    carries no error code (RFC 6750 §3.1), the body says ``invalid_token``.
    ``acr_values`` and ``max_age`` are the RFC 9470 §3 attributes.
    """
    params = []
    if realm:
        params.append(f'realm="{_quote(realm)}"')
    if error:
        params.append(f'error="{error}"')
        params.append(f'error_description="{_quote(description)}"')
    scopes = " ".join(sorted(scope))
    if scopes:
        params.append(f'scope="{_quote(scopes)}"')
    acrs = " ".join(acr_values)
    if acrs:
        params.append(f'acr_values="{_quote(acrs)}"')
    if max_age is not None:
        params.append(f'max_age="{int(max_age)}"')
    headers = {"Cache-Control": "no-store"}
    if status_code in (401, 403, 400):
        headers["WWW-Authenticate"] = "Bearer " + ", ".join(params) if params else "Bearer"
    body = {"error": error or "invalid_token", "error_description": description}
    return JSONResponse(body, status_code=status_code, headers=headers)


def step_up_response(exc: InsufficientUserAuthentication, *, realm: str | None = None) -> Response:
    """RFC 9470 §3: 401 ``insufficient_user_authentication`` with what the client must ask for.

    For a resource that calls :meth:`AccessTokenClaims.require` itself.
    """
    return bearer_error_response(
        401,
        exc.error_code,
        exc.description,
        realm=realm,
        acr_values=exc.acr_values,
        max_age=exc.max_age,
    )


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """``on_error`` for ``AuthenticationMiddleware``: RFC 6750 answers, not 400 text."""
    if isinstance(exc, BearerAuthError):
        return bearer_error_response(exc.status_code, exc.error, exc.description)
    return bearer_error_response(401, "invalid_token", "authentication failed")


class OneauthBackend(AuthenticationBackend):
    """Authenticates ``Authorization: Bearer`` requests with a :class:`Verifier`.

    Requests without an Authorization header, or with another scheme, are
    left unauthenticated (``request.user.is_authenticated`` is false) so that
    public endpoints keep working; endpoints opt in with :func:`require`.
    """

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier

    def middleware(self) -> Middleware:
        """``AuthenticationMiddleware`` wired to this backend and :func:`on_auth_error`."""
        return Middleware(AuthenticationMiddleware, backend=self, on_error=on_auth_error)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        values = conn.headers.getlist("authorization")
        if not values:
            return None
        if len(values) > 1:
            raise BearerAuthError(
                "multiple Authorization headers", error="invalid_request", status_code=400
            )
        scheme, _, token = values[0].partition(" ")
        # RFC 6750 §2.1 / RFC 9110 §11.1: the scheme is case-insensitive.
        if scheme.lower() != "bearer":
            return None
        token = token.strip(" ")
        if not token or " " in token:
            raise BearerAuthError(
                "malformed Bearer credentials", error="invalid_request", status_code=400
            )
        try:
            claims = await self.verifier.averify(token)
        except VerificationError as exc:
            raise BearerAuthError.from_verification(exc) from None
        return AuthCredentials(sorted(claims.scopes)), TokenUser(claims, self.verifier.clock)


def _names(value: str | Iterable[str]) -> frozenset[str]:
    return frozenset(value.split() if isinstance(value, str) else value)


def _authorize(
    request: Request,
    scopes: frozenset[str],
    access: AccessRequirement,
    allow_client_tokens: bool,
    stepup: AuthRequirement,
) -> Response | None:
    if "user" not in request.scope:
        raise RuntimeError("require() needs AuthenticationMiddleware with OneauthBackend")
    user = request.user
    if not isinstance(user, TokenUser):
        return bearer_error_response(401, None, "bearer token required")
    claims = user.claims
    try:
        # No user signed in to a client token: no step-up can satisfy a sign-in demand.
        if claims.is_client_token and (not allow_client_tokens or not stepup.empty):
            raise InsufficientScope("client tokens are not accepted here", check="client")
        if not claims.scopes.issuperset(scopes):
            raise InsufficientScope("token lacks a required scope", check="scope")
        access.check(claims, path_params=request.path_params)
    except InsufficientScope as exc:
        # RFC 6750 §3: the scope attribute names the scopes the resource needs.
        needed = scopes if exc.check == "scope" else ()
        return bearer_error_response(403, exc.error_code, exc.description, scope=needed)
    # Scopes before the sign-in: a step-up cannot grant a missing scope.
    try:
        stepup.check(claims, now=user.clock())
    except InsufficientUserAuthentication as exc:
        return step_up_response(exc)
    return None


def require(
    scopes: str | Iterable[str] = (),
    roles: str | Iterable[str] = (),
    *,
    role: str | Iterable[str] = (),
    permission: str | Iterable[str] = (),
    org: bool | str = False,
    org_role: str | Iterable[str] = (),
    org_permission: str | Iterable[str] = (),
    org_path_param: str | None = None,
    allow_client_tokens: bool = True,
    acr: str | Iterable[str] | None = None,
    amr: str | Iterable[str] | None = None,
    max_age: int | None = None,
) -> Callable[[_Endpoint], _Endpoint]:
    """Decorate a Starlette HTTP endpoint to demand a valid token.

    All listed ``scopes`` and all listed ``roles`` (or ``role``) are required,
    and every ``permission``. ``org``, ``org_role``, ``org_permission`` and
    ``org_path_param`` demand an org-scoped token (see
    :class:`~oneauth_verifier.AccessRequirement`); a token that falls short
    of any of these gets 403 ``insufficient_scope``. ``acr``, ``amr`` and
    ``max_age`` demand a kind of sign-in (see
    :class:`~oneauth_verifier.AuthRequirement`); a token that falls short
    gets the RFC 9470 challenge. Works on sync and async functions and
    methods with a parameter named ``request``. Needs
    :meth:`OneauthBackend.middleware` installed.
    """
    need_scopes = _names(scopes)
    access = AccessRequirement(
        role=[*_names(roles), *_names(role)],
        permission=permission,
        org=org,
        org_role=org_role,
        org_permission=org_permission,
        org_path_param=org_path_param,
    )
    stepup = AuthRequirement(acr=acr, amr=amr, max_age=max_age)

    def decorate(endpoint: _Endpoint) -> _Endpoint:
        params = list(inspect.signature(endpoint).parameters)
        if "request" not in params:
            raise TypeError(f"{endpoint.__qualname__} has no 'request' parameter")
        index = params.index("request")

        def find_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
            request = kwargs["request"] if "request" in kwargs else args[index]
            if not isinstance(request, Request):
                raise TypeError("require() only supports HTTP endpoints")
            return request

        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                denied = _authorize(
                    find_request(args, kwargs), need_scopes, access, allow_client_tokens, stepup
                )
                return denied if denied is not None else await endpoint(*args, **kwargs)

            return cast(_Endpoint, async_wrapper)

        @functools.wraps(endpoint)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            denied = _authorize(
                find_request(args, kwargs), need_scopes, access, allow_client_tokens, stepup
            )
            return denied if denied is not None else endpoint(*args, **kwargs)

        return cast(_Endpoint, sync_wrapper)

    return decorate


def require_org(
    org: bool | str = True,
    *,
    org_role: str | Iterable[str] = (),
    org_permission: str | Iterable[str] = (),
    path_param: str | None = None,
    scopes: str | Iterable[str] = (),
    allow_client_tokens: bool = True,
    **demands: Any,
) -> Callable[[_Endpoint], _Endpoint]:
    """:func:`require` for an org-scoped token: of any org (default), or ``org``
    (an id or slug); with these org roles and permissions; ``path_param``: the
    path parameter the token's ``org_id`` must equal. ``demands``: the other
    :func:`require` keywords (``permission``, ``role``, ``amr``, ...)."""
    return require(
        scopes,
        org=org,
        org_role=org_role,
        org_permission=org_permission,
        org_path_param=path_param,
        allow_client_tokens=allow_client_tokens,
        **demands,
    )
