"""FastAPI integration: ``Depends(require(...))`` hands the endpoint verified claims.

::

    from fastapi import Depends, FastAPI
    from oneauth_verifier import AccessTokenClaims, Verifier
    from oneauth_verifier.fastapi import install, require

    app = FastAPI()
    install(app, Verifier("https://auth.example.com/apps/shop", "orders-api", "shop"))

    @app.get("/orgs/{org_id}/orders")
    async def orders(
        claims: AccessTokenClaims = Depends(
            require(scope="orders:read", org_role="admin", org_path_param="org_id")
        ),
    ) -> dict[str, str]:
        return {"sub": claims.sub}

``require`` takes the demands of :class:`~oneauth_verifier.bearer.Demand`
(``scope``, ``role``, ``permission``, ``org``, ``org_role``,
``org_permission``, ``org_path_param``, ``allow_client_tokens``, ``acr``,
``amr``, ``max_age``) and answers a request that falls short as RFC 6750 /
RFC 9470 say (see :mod:`oneauth_verifier.bearer`): 401 with
``WWW-Authenticate: Bearer`` without a token, 401 ``invalid_token``, 403
``insufficient_scope``, 401 ``insufficient_user_authentication`` with
``acr_values`` / ``max_age``, 400 ``invalid_request``, 503 when the issuer's
keys cannot be fetched. The body is ``{"error", "error_description"}`` once
:func:`install` registered its exception handler; without it FastAPI's own
handler answers with the same status and headers and the body under
``detail``. The verifier comes from :func:`install` (``app.state``) or from
``require(..., verifier=...)``. Endpoints may be sync or async (the
dependency is async; it only awaits to fetch the JWKS). The OpenAPI document
declares the bearer security scheme ``oneauth`` on every protected route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ._claims import AccessTokenClaims
from ._verifier import Verifier
from .bearer import BearerChallenge, BearerError, Demand

__all__ = ["BearerHTTPException", "bearer_exception_handler", "install", "require"]

# For the OpenAPI document only: auto_error=False never answers by itself, the
# header is parsed by bearer_token (two headers, odd spacing: 400, not a guess).
_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="oneauth",
    bearerFormat="JWT",
    description="A oneauth access token (RFC 9068): Authorization: Bearer <token>.",
)

_STATE = "oneauth_verifier"
_REALM = "oneauth_realm"


class BearerHTTPException(HTTPException):
    """A refused request: status and ``WWW-Authenticate`` from its ``challenge``."""

    def __init__(self, challenge: BearerChallenge, *, realm: str | None = None) -> None:
        super().__init__(
            challenge.status_code, detail=challenge.body(), headers=challenge.headers(realm)
        )
        self.challenge = challenge


async def bearer_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    """The RFC 6750 body (``error``, ``error_description``) with the challenge's headers."""
    if not isinstance(exc, BearerHTTPException):  # pragma: no cover - registered for it only
        raise exc
    return JSONResponse(exc.challenge.body(), status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI, verifier: Verifier, *, realm: str | None = None) -> None:
    """Make ``verifier`` the one :func:`require` uses and answer refusals RFC 6750's way.

    ``realm``: the ``realm`` attribute of every challenge (RFC 6750 §3), if any.
    """
    setattr(app.state, _STATE, verifier)
    setattr(app.state, _REALM, realm)
    app.add_exception_handler(BearerHTTPException, bearer_exception_handler)


def _installed(request: Request) -> tuple[Verifier, str | None]:
    verifier = getattr(request.app.state, _STATE, None)
    if not isinstance(verifier, Verifier):
        # A wiring mistake, not the client's: fail loudly rather than let a request in.
        raise RuntimeError(
            "oneauth_verifier.fastapi: call install(app, verifier) or pass verifier="
        )
    return verifier, getattr(request.app.state, _REALM, None)


def require(
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
    verifier: Verifier | None = None,
    realm: str | None = None,
) -> Callable[..., Awaitable[AccessTokenClaims]]:
    """A dependency that verifies the bearer token and returns its claims.

    Demands as in :class:`~oneauth_verifier.bearer.Demand` (checked when
    ``require`` is called, so a typo fails at import, not per request).
    ``org_path_param`` names a path parameter of the route that must equal the
    token's ``org_id``. ``verifier``/``realm`` override :func:`install`'s.
    """
    demand = Demand(
        scope,
        role=role,
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

    async def oneauth_bearer(
        request: Request,
        _documented: HTTPAuthorizationCredentials | None = Security(_scheme),
    ) -> AccessTokenClaims:
        chosen, installed_realm = (verifier, None) if verifier is not None else _installed(request)
        try:
            return await demand.aauthorize(
                chosen,
                request.headers.getlist("authorization"),
                path_params=request.path_params,
            )
        except BearerError as exc:
            raise BearerHTTPException(
                exc.challenge, realm=realm if realm is not None else installed_realm
            ) from None

    return oneauth_bearer
