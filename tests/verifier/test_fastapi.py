"""oneauth_verifier.fastapi: Depends(require(...)) in a real FastAPI app (RFC 6750 / RFC 9470).

Tokens from TokenMinter (the resource server's own tests' way); the live-service
tokens are in test_fastapi_live.py. The framework-free Demand (sync and async) is
checked here too, beside the dependency it backs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from oneauth_verifier import ACR_MFA, AccessTokenClaims, Verifier
from oneauth_verifier.bearer import BearerError, Demand, bearer_token
from oneauth_verifier.fastapi import install, require
from oneauth_verifier.testing import TokenMinter

ISSUER = "https://auth.test/apps/shop"
ORG = "org_acme000000000000"
OTHER_ORG = "org_globex0000000000"


def build_app(verifier: Verifier, *, realm: str | None = None) -> FastAPI:
    app = FastAPI()
    install(app, verifier, realm=realm)

    @app.get("/public")
    async def public() -> dict[str, bool]:
        return {"public": True}

    @app.get("/orders")
    async def orders(
        claims: AccessTokenClaims = Depends(require(scope="orders:read")),
    ) -> dict[str, Any]:
        return {"sub": claims.sub, "scopes": sorted(claims.scopes)}

    @app.get("/admin")
    def admin(  # a sync endpoint behind the async dependency
        claims: AccessTokenClaims = Depends(require(scope="orders:read", role="admin")),
    ) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.get("/invoices", dependencies=[Depends(require(permission="invoice:read"))])
    async def invoices() -> dict[str, bool]:
        return {"invoices": True}

    @app.get("/orgs/{org_id}/members")
    async def members(
        org_id: str,
        claims: AccessTokenClaims = Depends(
            require(org_role="admin", org_permission="org:members:write", org_path_param="org_id")
        ),
    ) -> dict[str, Any]:
        return {"org_id": org_id, "org_roles": sorted(claims.org_roles)}

    @app.get("/vault")
    async def vault(
        claims: AccessTokenClaims = Depends(require(acr=ACR_MFA, max_age=300)),
    ) -> dict[str, Any]:
        return {"acr": claims.acr}

    @app.get("/me")
    async def me(
        claims: AccessTokenClaims = Depends(require(allow_client_tokens=False)),
    ) -> dict[str, str]:
        return {"sub": claims.sub}

    return app


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter(ISSUER, app_id="shop", audience="orders-api")


@pytest.fixture
async def api(minter: TokenMinter) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(minter.verifier()))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(answer: httpx.Response, status: int, error: str, description: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.json() == {"error": error, "error_description": description}
    assert answer.headers["cache-control"] == "no-store"
    challenge: str = answer.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer error="{error}", error_description="{description}"')
    return challenge


async def test_valid_token_reaches_sync_and_async_endpoints(
    api: httpx.AsyncClient, minter: TokenMinter
) -> None:
    token = minter.mint(sub="u1", scope="orders:read orders:write", roles=["admin"])
    answer = await api.get("/orders", headers=bearer(token))
    assert answer.json() == {"sub": "u1", "scopes": ["orders:read", "orders:write"]}
    assert (await api.get("/admin", headers=bearer(token))).json() == {"sub": "u1"}
    assert (await api.get("/public")).json() == {"public": True}


async def test_no_token_gets_a_bare_bearer_challenge(api: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dTpw"}):
        answer = await api.get("/orders", headers=headers)
        assert answer.status_code == 401
        # RFC 6750 §3.1: no error code when the request carried no credentials.
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json() == {
            "error": "invalid_token",
            "error_description": "bearer token required",
        }


async def test_bad_tokens_get_invalid_token(api: httpx.AsyncClient, minter: TokenMinter) -> None:
    other = TokenMinter(ISSUER, app_id="shop", audience="orders-api")  # another key
    assert_refused(
        await api.get("/orders", headers=bearer(other.mint(scope="orders:read"))),
        401,
        "invalid_token",
        "no key with this kid in the issuer's JWKS",
    )
    expired = minter.mint(scope="orders:read", ttl=-120)
    answer = await api.get("/orders", headers=bearer(expired))
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"
    assert (await api.get("/orders", headers=bearer("not.a.jwt"))).json()["error"] == (
        "invalid_token"
    )


async def test_malformed_authorization_is_invalid_request(
    api: httpx.AsyncClient, minter: TokenMinter
) -> None:
    token = minter.mint(scope="orders:read")
    assert_refused(
        await api.get("/orders", headers={"Authorization": "Bearer a b"}),
        400,
        "invalid_request",
        "malformed Bearer credentials",
    )
    twice = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    assert_refused(
        await api.get("/orders", headers=twice),
        400,
        "invalid_request",
        "multiple Authorization headers",
    )


async def test_missing_scope_role_permission_org_are_insufficient_scope(
    api: httpx.AsyncClient, minter: TokenMinter
) -> None:
    challenge = assert_refused(
        await api.get("/orders", headers=bearer(minter.mint(scope="profile"))),
        403,
        "insufficient_scope",
        "token lacks a required scope",
    )
    # RFC 6750 §3: the scope attribute says which scopes the resource needs.
    assert challenge.endswith('scope="orders:read"')
    no_role = minter.mint(scope="orders:read", roles=["viewer"])
    assert_refused(
        await api.get("/admin", headers=bearer(no_role)),
        403,
        "insufficient_scope",
        "subject lacks a required role",
    )
    assert_refused(
        await api.get("/invoices", headers=bearer(minter.mint(permissions=["invoice:write"]))),
        403,
        "insufficient_scope",
        "token lacks a required permission",
    )
    granted = minter.mint(permissions=["invoice:read"])
    assert (await api.get("/invoices", headers=bearer(granted))).json() == {"invoices": True}


async def test_org_demands_and_the_path_parameter(
    api: httpx.AsyncClient, minter: TokenMinter
) -> None:
    admin = minter.mint(
        org_id=ORG, org_roles=["admin"], org_permissions=["org:members:write", "org:read"]
    )
    answer = await api.get(f"/orgs/{ORG}/members", headers=bearer(admin))
    assert answer.json() == {"org_id": ORG, "org_roles": ["admin"]}
    # The same token on another org's URL: refused, not served.
    assert_refused(
        await api.get(f"/orgs/{OTHER_ORG}/members", headers=bearer(admin)),
        403,
        "insufficient_scope",
        "the token is for another organization than this URL's",
    )
    assert_refused(
        await api.get(f"/orgs/{ORG}/members", headers=bearer(minter.mint())),
        403,
        "insufficient_scope",
        "a token for an organization is required",
    )
    member = minter.mint(org_id=ORG, org_roles=["member"], org_permissions=["org:members:write"])
    assert_refused(
        await api.get(f"/orgs/{ORG}/members", headers=bearer(member)),
        403,
        "insufficient_scope",
        "member lacks a required organization role",
    )


async def test_step_up_gets_the_rfc_9470_challenge(
    api: httpx.AsyncClient, minter: TokenMinter
) -> None:
    single = minter.mint(acr="urn:oneauth:acr:sfa")
    challenge = assert_refused(
        await api.get("/vault", headers=bearer(single)),
        401,
        "insufficient_user_authentication",
        "a different authentication level is required",
    )
    assert challenge.endswith(f'acr_values="{ACR_MFA}", max_age="300"')
    stale = minter.mint(acr=ACR_MFA, amr=["pwd", "otp", "mfa"], auth_time=int(time.time()) - 900)
    challenge = assert_refused(
        await api.get("/vault", headers=bearer(stale)),
        401,
        "insufficient_user_authentication",
        "a more recent sign-in is required",
    )
    assert 'max_age="300"' in challenge
    fresh = minter.mint(acr=ACR_MFA, amr=["pwd", "otp", "mfa"])
    assert (await api.get("/vault", headers=bearer(fresh))).json() == {"acr": ACR_MFA}
    # A client token has no sign-in to step up: refused as such, not challenged.
    machine = minter.mint_client_token(scope="orders:read")
    assert_refused(
        await api.get("/vault", headers=bearer(machine)),
        403,
        "insufficient_scope",
        "client tokens are not accepted here",
    )


async def test_client_tokens_where_refused(api: httpx.AsyncClient, minter: TokenMinter) -> None:
    machine = minter.mint_client_token(scope="orders:read")
    assert (await api.get("/orders", headers=bearer(machine))).status_code == 200
    assert_refused(
        await api.get("/me", headers=bearer(machine)),
        403,
        "insufficient_scope",
        "client tokens are not accepted here",
    )


async def test_another_apps_token_is_refused(api: httpx.AsyncClient) -> None:
    """App B's token (its own issuer, app_id and keys) never opens app A's API."""
    b = TokenMinter("https://auth.test/apps/blog", app_id="blog", audience="orders-api")
    answer = await api.get("/orders", headers=bearer(b.mint(scope="orders:read")))
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"


async def test_unreachable_issuer_is_503_without_a_challenge() -> None:
    verifier = Verifier(
        ISSUER, "orders-api", "shop", jwks_uri="http://127.0.0.1:9/jwks", http_timeout=1
    )
    minter = TokenMinter(ISSUER, app_id="shop", audience="orders-api")
    transport = httpx.ASGITransport(app=build_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as api:
        answer = await api.get("/orders", headers=bearer(minter.mint(scope="orders:read")))
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "temporarily_unavailable",
        "error_description": "issuer keys unavailable",
    }
    # The token may be fine: no challenge, so the client does not discard it.
    assert "www-authenticate" not in answer.headers


async def test_realm_and_per_route_verifier(minter: TokenMinter) -> None:
    app = FastAPI()  # no install(): FastAPI's own handler, same status and headers
    other = TokenMinter("https://auth.test/apps/blog", app_id="blog", audience="posts")
    blog = other.verifier()

    @app.get("/posts")
    async def posts(
        claims: AccessTokenClaims = Depends(
            require(scope="posts:read", verifier=blog, realm="posts")
        ),
    ) -> dict[str, str]:
        return {"sub": claims.sub}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as api:
        ok = await api.get("/posts", headers=bearer(other.mint(sub="u9", scope="posts:read")))
        assert ok.json() == {"sub": "u9"}
        denied = await api.get("/posts", headers=bearer(minter.mint(scope="posts:read")))
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith(
        'Bearer realm="posts", error="invalid_token"'
    )
    assert denied.json()["detail"]["error"] == "invalid_token"


async def test_without_install_the_misconfiguration_is_loud(minter: TokenMinter) -> None:
    app = FastAPI()

    @app.get("/orders")
    async def orders(claims: AccessTokenClaims = Depends(require())) -> dict[str, str]:
        return {"sub": claims.sub}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as api:
        with pytest.raises(RuntimeError, match="install"):
            await api.get("/orders", headers=bearer(minter.mint()))


async def test_openapi_declares_the_bearer_scheme(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["oneauth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A oneauth access token (RFC 9068): Authorization: Bearer <token>.",
    }
    assert doc["paths"]["/orders"]["get"]["security"] == [{"oneauth": []}]
    assert "security" not in doc["paths"]["/public"]["get"]


def test_demand_sync_and_async_apis_agree(minter: TokenMinter) -> None:
    """The framework-free core, for Flask/Django/WSGI: the same answers, sync or async."""
    import asyncio

    verifier = minter.verifier()
    demand = Demand("orders:read", org_role="admin")
    good = minter.mint(sub="u1", scope="orders:read", org_id=ORG, org_roles=["admin"])
    assert demand.authorize(verifier, f"Bearer {good}").sub == "u1"
    assert asyncio.run(demand.aauthorize(verifier, [f"Bearer {good}"])).sub == "u1"
    for authorization, status in (
        (None, 401),
        (f"Bearer {minter.mint(scope='orders:read')}", 403),
        ("Bearer", 400),
    ):
        with pytest.raises(BearerError) as sync_refusal:
            demand.authorize(verifier, authorization)
        with pytest.raises(BearerError) as async_refusal:
            asyncio.run(demand.aauthorize(verifier, authorization))
        assert sync_refusal.value.challenge == async_refusal.value.challenge
        assert sync_refusal.value.challenge.status_code == status
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Basic abc") is None
    with pytest.raises(ValueError, match="non-empty"):
        Demand(role=[""])
