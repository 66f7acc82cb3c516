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

from ._claims import AccessTokenClaims
from ._verifier import Verifier
from .bearer import BearerChallenge, BearerError, Demand, bearer_token
from .errors import InsufficientUserAuthentication, VerificationError

__all__ = [
    "BearerAuthError",
    "OneauthBackend",
    "TokenUser",
    "bearer_error_response",
    "challenge_response",
    "on_auth_error",
    "require",
    "require_org",
    "step_up_response",
]

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


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
        return cls.from_challenge(BearerChallenge.for_error(exc), cause=exc)

    @classmethod
    def from_challenge(
        cls, challenge: BearerChallenge, *, cause: VerificationError | None = None
    ) -> BearerAuthError:
        return cls(
            challenge.description,
            error=challenge.error or "invalid_token",
            status_code=challenge.status_code,
            cause=cause,
        )


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
    challenge = BearerChallenge(
        status_code,
        error,
        description,
        scope=tuple(sorted(scope)),
        acr_values=tuple(acr_values),
        max_age=max_age,
    )
    return challenge_response(challenge, realm=realm)


def challenge_response(challenge: BearerChallenge, *, realm: str | None = None) -> Response:
    """The JSON answer to a :class:`~oneauth_verifier.bearer.BearerChallenge`."""
    return JSONResponse(
        challenge.body(), status_code=challenge.status_code, headers=challenge.headers(realm)
    )


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
        try:
            token = bearer_token(conn.headers.getlist("authorization"))
        except BearerError as exc:
            raise BearerAuthError.from_challenge(exc.challenge) from None
        if token is None:
            return None
        try:
            claims = await self.verifier.averify(token)
        except VerificationError as exc:
            raise BearerAuthError.from_verification(exc) from None
        return AuthCredentials(sorted(claims.scopes)), TokenUser(claims, self.verifier.clock)


def _authorize(request: Request, demand: Demand) -> Response | None:
    if "user" not in request.scope:
        raise RuntimeError("require() needs AuthenticationMiddleware with OneauthBackend")
    user = request.user
    if not isinstance(user, TokenUser):
        return bearer_error_response(401, None, "bearer token required")
    try:
        demand.check(user.claims, now=user.clock(), path_params=request.path_params)
    except BearerError as exc:
        return challenge_response(exc.challenge)
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
    if isinstance(roles, str):
        roles = roles.split()
    if isinstance(role, str):
        role = role.split()
    demand = Demand(
        scopes,
        role=[*roles, *role],
        permission=permission,
        org=org,
        org_role=org_role,
        org_permission=org_permission,
        org_path_param=org_path_param,
        allow_client_tokens=allow_client_tokens,
        acr=acr,
        amr=amr,
        max_age=max_age,
    )

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
                denied = _authorize(find_request(args, kwargs), demand)
                return denied if denied is not None else await endpoint(*args, **kwargs)

            return cast(_Endpoint, async_wrapper)

        @functools.wraps(endpoint)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            denied = _authorize(find_request(args, kwargs), demand)
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
