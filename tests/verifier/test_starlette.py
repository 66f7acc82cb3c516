"""OneauthBackend and require() in a real Starlette app (RFC 6750 responses)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oneauth.verifier import Verifier
from oneauth.verifier.starlette import (
    OneauthBackend,
    TokenUser,
    bearer_error_response,
    require,
)

from ._support import LiveIssuer


async def public(request: Request) -> Response:
    return JSONResponse({"authenticated": request.user.is_authenticated})


@require(scopes="orders:read")
async def orders(request: Request) -> Response:
    user = request.user
    assert isinstance(user, TokenUser)
    return JSONResponse(
        {"sub": user.identity, "scopes": sorted(request.auth.scopes), "client": user.is_client}
    )


@require(scopes=["orders:read", "orders:write"], roles="admin")
def admin(request: Request) -> Response:  # sync endpoints work too
    return JSONResponse({"sub": request.user.claims.sub})


@require(allow_client_tokens=False)
async def me(request: Request) -> Response:
    return JSONResponse({"sub": request.user.display_name})


class Items(HTTPEndpoint):
    @require(scopes="items:read")
    async def get(self, request: Request) -> Response:
        return JSONResponse({"sub": request.user.claims.sub})


def build_app(verifier: Verifier) -> Starlette:
    return Starlette(
        routes=[
            Route("/public", public),
            Route("/orders", orders),
            Route("/admin", admin),
            Route("/me", me),
            Route("/items", Items),
        ],
        middleware=[OneauthBackend(verifier).middleware()],
    )


@pytest.fixture
async def client(shop: LiveIssuer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(shop.verifier()))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_reaches_the_endpoint(
    client: httpx.AsyncClient, shop: LiveIssuer
) -> None:
    token = shop.minter.mint(sub="user-9", scope="orders:read profile")
    response = await client.get("/orders", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {
        "sub": "user-9",
        "scopes": ["orders:read", "profile"],
        "client": False,
    }
    lower = await client.get("/orders", headers={"Authorization": f"bearer {token}"})
    assert lower.status_code == 200  # the scheme is case-insensitive


async def test_missing_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/public")).json() == {"authenticated": False}
    response = await client.get("/orders")
    assert response.status_code == 401
    # RFC 6750 §3.1: no error code when the request carried no credentials.
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "invalid_token"


async def test_other_schemes_are_left_alone(client: httpx.AsyncClient) -> None:
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert (await client.get("/public", headers=basic)).json() == {"authenticated": False}
    response = await client.get("/orders", headers=basic)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("token_kind", "description"),
    [
        ("expired", "token expired"),
        ("garbage", "token is not a compact JWS"),
        ("wrong_aud", "audience mismatch"),
    ],
)
async def test_invalid_token_is_401(
    client: httpx.AsyncClient, shop: LiveIssuer, token_kind: str, description: str
) -> None:
    token = {
        "expired": shop.minter.mint(scope="orders:read", ttl=-3600),
        "garbage": "not-a-token",
        "wrong_aud": shop.minter.mint(scope="orders:read", aud="billing-api"),
    }[token_kind]
    for path in ("/orders", "/public"):  # a bad token is refused even on public routes
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == (
            f'Bearer error="invalid_token", error_description="{description}"'
        )
        assert response.json() == {"error": "invalid_token", "error_description": description}
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer")],
        [("Authorization", "Bearer   ")],
        [("Authorization", "Bearer a b")],
        [("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
    ],
)
async def test_malformed_authorization_is_400(
    client: httpx.AsyncClient, headers: list[tuple[str, str]]
) -> None:
    response = await client.get("/orders", headers=headers)
    assert response.status_code == 400
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_request"')
    assert response.json()["error"] == "invalid_request"


async def test_missing_scope_is_403(client: httpx.AsyncClient, shop: LiveIssuer) -> None:
    response = await client.get("/orders", headers=bearer(shop.minter.mint(scope="profile")))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", '
        'error_description="token lacks a required scope", scope="orders:read"'
    )
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "token lacks a required scope",
    }


async def test_roles_and_all_scopes_are_required(
    client: httpx.AsyncClient, shop: LiveIssuer
) -> None:
    both = "orders:read orders:write"
    ok = await client.get("/admin", headers=bearer(shop.minter.mint(scope=both, roles=["admin"])))
    assert ok.status_code == 200
    one_scope = shop.minter.mint(scope="orders:read", roles=["admin"])
    response = await client.get("/admin", headers=bearer(one_scope))
    assert response.status_code == 403
    assert 'scope="orders:read orders:write"' in response.headers["www-authenticate"]
    no_role = await client.get("/admin", headers=bearer(shop.minter.mint(scope=both)))
    assert no_role.status_code == 403
    assert no_role.json()["error_description"] == "subject lacks a required role"
    assert "scope=" not in no_role.headers["www-authenticate"]


async def test_client_tokens(client: httpx.AsyncClient, shop: LiveIssuer) -> None:
    token = shop.minter.mint_client_token("worker", scope="orders:read")
    response = await client.get("/orders", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["client"] is True
    refused = await client.get("/me", headers=bearer(token))
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    user = await client.get("/me", headers=bearer(shop.minter.mint(sub="user-3")))
    assert user.json() == {"sub": "user-3"}


async def test_http_endpoint_methods(client: httpx.AsyncClient, shop: LiveIssuer) -> None:
    ok = await client.get("/items", headers=bearer(shop.minter.mint(scope="items:read")))
    assert ok.json() == {"sub": "user-1"}
    assert (await client.get("/items", headers=bearer(shop.minter.mint()))).status_code == 403


async def test_jwks_outage_is_503_not_401(shop: LiveIssuer) -> None:
    shop.server.configure(shop.app_id, status=503)
    transport = httpx.ASGITransport(app=build_app(shop.verifier()))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        response = await client.get("/orders", headers=bearer(shop.minter.mint()))
    assert response.status_code == 503
    assert "www-authenticate" not in response.headers
    assert response.json()["error"] == "temporarily_unavailable"


async def test_require_without_middleware_is_a_programming_error() -> None:
    app = Starlette(routes=[Route("/orders", orders)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        with pytest.raises(RuntimeError, match="AuthenticationMiddleware"):
            await client.get("/orders")


def test_require_needs_a_request_parameter() -> None:
    with pytest.raises(TypeError, match="request"):

        @require(scopes="x")
        async def handler(req: Request) -> Response:  # pragma: no cover
            return Response()


def test_challenge_values_are_sanitised() -> None:
    response = bearer_error_response(401, "invalid_token", 'bad "quoted" \\ thing\n')
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="bad ?quoted? ? thing?"'
    )
    realm = bearer_error_response(401, None, "x", realm="orders")
    assert realm.headers["www-authenticate"] == 'Bearer realm="orders"'
