"""Bearer-token requests for any framework: parse, verify, authorize, challenge.

The framework-free core of :mod:`oneauth_verifier.starlette` and
:mod:`oneauth_verifier.fastapi`, usable as it is from Flask, Django or a plain
WSGI/ASGI app, with a sync and an async entry point::

    from oneauth_verifier.bearer import BearerError, Demand

    orders_read = Demand(scope="orders:read", org_role="admin", acr=ACR_MFA)

    try:
        claims = orders_read.authorize(verifier, request.headers.getlist("Authorization"))
        # async: claims = await orders_read.aauthorize(verifier, ...)
    except BearerError as exc:
        c = exc.challenge  # status_code, headers(realm=...), body()
        return Response(json.dumps(c.body()), c.status_code, c.headers())

Answers follow RFC 6750 §3 and RFC 9470 §3:

- no token (no Authorization header, or another scheme): 401 with a bare
  ``WWW-Authenticate: Bearer`` (no error code, RFC 6750 §3.1);
- two Authorization headers, or malformed Bearer credentials: 400
  ``invalid_request``;
- a token that fails verification: 401 ``invalid_token``;
- a valid token without a demanded scope, role, permission or organization:
  403 ``insufficient_scope`` (with ``scope="..."`` naming the needed scopes
  when a scope was missing);
- a valid token whose sign-in falls short of ``acr``, ``amr`` or ``max_age``:
  401 ``insufficient_user_authentication`` with ``acr_values`` and ``max_age``;
- the issuer's keys cannot be fetched: 503 ``temporarily_unavailable``
  without a challenge (the client's token may be fine: it must not drop it).

Every answer carries ``Cache-Control: no-store``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

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

__all__ = ["BearerChallenge", "BearerError", "Demand", "bearer_token"]

# RFC 6750 §3: error_description and scope values are limited to printable
# ASCII without '"' and '\'.
_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def _quote(value: str) -> str:
    return _UNSAFE.sub("?", value)


@dataclass(frozen=True, slots=True)
class BearerChallenge:
    """One refusal: status, RFC 6750 error code, description, RFC 9470 attributes.

    ``error=None`` means "no credentials were sent": the challenge then carries
    no error code (RFC 6750 §3.1); the body still says ``invalid_token``.
    """

    status_code: int
    error: str | None
    description: str
    scope: tuple[str, ...] = ()
    acr_values: tuple[str, ...] = ()
    max_age: int | None = None

    @classmethod
    def for_error(cls, exc: VerificationError, *, scope: Iterable[str] = ()) -> BearerChallenge:
        """The answer to a verification or authorization failure."""
        if isinstance(exc, JWKSUnavailable):
            # Whatever the cause, the client learns only that it should retry.
            return cls(503, exc.error_code, "issuer keys unavailable")
        if isinstance(exc, InsufficientUserAuthentication):
            return cls(
                401,
                exc.error_code,
                exc.description,
                acr_values=exc.acr_values,
                max_age=exc.max_age,
            )
        if isinstance(exc, InsufficientScope):
            return cls(403, exc.error_code, exc.description, scope=tuple(sorted(scope)))
        return cls(401, exc.error_code, exc.description)

    def www_authenticate(self, realm: str | None = None) -> str | None:
        """The ``WWW-Authenticate`` value, or None where none belongs (503)."""
        if self.status_code not in (400, 401, 403):
            return None
        params = []
        if realm:
            params.append(f'realm="{_quote(realm)}"')
        if self.error:
            params.append(f'error="{self.error}"')
            params.append(f'error_description="{_quote(self.description)}"')
        scopes = " ".join(self.scope)
        if scopes:
            params.append(f'scope="{_quote(scopes)}"')
        acrs = " ".join(self.acr_values)
        if acrs:
            params.append(f'acr_values="{_quote(acrs)}"')
        if self.max_age is not None:
            params.append(f'max_age="{int(self.max_age)}"')
        return "Bearer " + ", ".join(params) if params else "Bearer"

    def headers(self, realm: str | None = None) -> dict[str, str]:
        headers = {"Cache-Control": "no-store"}
        challenge = self.www_authenticate(realm)
        if challenge is not None:
            headers["WWW-Authenticate"] = challenge
        return headers

    def body(self) -> dict[str, str]:
        return {"error": self.error or "invalid_token", "error_description": self.description}


class BearerError(Exception):
    """A request refused; ``challenge`` says how to answer it."""

    def __init__(self, challenge: BearerChallenge) -> None:
        super().__init__(challenge.description)
        self.challenge = challenge


_NO_TOKEN = BearerChallenge(401, None, "bearer token required")


def bearer_token(authorization: str | Sequence[str] | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``, None without one.

    ``authorization``: the header's values (all of them: two headers are a
    400, not a choice), or the one value, or None. Another scheme is "no
    token" (a public endpoint may still answer); malformed Bearer credentials
    raise :class:`BearerError` (400 ``invalid_request``).
    """
    if authorization is None:
        return None
    values = [authorization] if isinstance(authorization, str) else list(authorization)
    if not values:
        return None
    if len(values) > 1:
        raise BearerError(BearerChallenge(400, "invalid_request", "multiple Authorization headers"))
    scheme, _, token = values[0].partition(" ")
    # RFC 6750 §2.1 / RFC 9110 §11.1: the scheme is case-insensitive.
    if scheme.lower() != "bearer":
        return None
    token = token.strip(" ")
    if not token or " " in token:
        raise BearerError(BearerChallenge(400, "invalid_request", "malformed Bearer credentials"))
    return token


def _names(value: str | Iterable[str]) -> frozenset[str]:
    return frozenset(value.split() if isinstance(value, str) else value)


class Demand:
    """What one resource demands of a bearer token, checked in a fixed order.

    All of ``scope`` (space-separated or a list), every ``role`` and
    ``permission``; ``org``/``org_role``/``org_permission``/``org_path_param``
    as in :class:`~oneauth_verifier.AccessRequirement`; ``acr``/``amr``/
    ``max_age`` as in :class:`~oneauth_verifier.AuthRequirement`.
    ``allow_client_tokens=False`` refuses client-credentials tokens; a sign-in
    demand refuses them always (no user signed in). Scopes and access are
    checked before the sign-in: a step-up cannot grant a missing scope.
    """

    def __init__(
        self,
        scope: str | Iterable[str] = (),
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
    ) -> None:
        self.scopes = _names(scope)
        self.access = AccessRequirement(
            role=role,
            permission=permission,
            org=org,
            org_role=org_role,
            org_permission=org_permission,
            org_path_param=org_path_param,
        )
        self.stepup = AuthRequirement(acr=acr, amr=amr, max_age=max_age)
        self.allow_client_tokens = allow_client_tokens

    def check(
        self,
        claims: AccessTokenClaims,
        *,
        now: float,
        path_params: Mapping[str, object] | None = None,
    ) -> None:
        """Raise :class:`BearerError` unless verified ``claims`` meet the demand."""
        try:
            # No user signed in to a client token: no step-up can satisfy a sign-in demand.
            if claims.is_client_token and (not self.allow_client_tokens or not self.stepup.empty):
                raise InsufficientScope("client tokens are not accepted here", check="client")
            if not claims.scopes.issuperset(self.scopes):
                raise InsufficientScope("token lacks a required scope", check="scope")
            self.access.check(claims, path_params=path_params)
            self.stepup.check(claims, now=now)
        except (InsufficientScope, InsufficientUserAuthentication) as exc:
            # RFC 6750 §3: the scope attribute names the scopes the resource needs.
            needed = self.scopes if exc.check == "scope" else ()
            raise BearerError(BearerChallenge.for_error(exc, scope=needed)) from None

    def _token(self, authorization: str | Sequence[str] | None) -> str:
        token = bearer_token(authorization)
        if token is None:
            raise BearerError(_NO_TOKEN)
        return token

    def authorize(
        self,
        verifier: Verifier,
        authorization: str | Sequence[str] | None,
        *,
        path_params: Mapping[str, object] | None = None,
    ) -> AccessTokenClaims:
        """Verify the request's token and check it (sync; may block on a JWKS fetch)."""
        token = self._token(authorization)
        try:
            claims = verifier.verify(token)
        except VerificationError as exc:
            raise BearerError(BearerChallenge.for_error(exc)) from None
        self.check(claims, now=verifier.clock(), path_params=path_params)
        return claims

    async def aauthorize(
        self,
        verifier: Verifier,
        authorization: str | Sequence[str] | None,
        *,
        path_params: Mapping[str, object] | None = None,
    ) -> AccessTokenClaims:
        """Async :meth:`authorize`; only awaits when the JWKS must be fetched."""
        token = self._token(authorization)
        try:
            claims = await verifier.averify(token)
        except VerificationError as exc:
            raise BearerError(BearerChallenge.for_error(exc)) from None
        self.check(claims, now=verifier.clock(), path_params=path_params)
        return claims
