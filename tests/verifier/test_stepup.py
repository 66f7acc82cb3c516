"""Step-up demands on verified claims and in the Starlette backend (RFC 9470)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oneauth.verifier import (
    ACR_MFA,
    AuthRequirement,
    InsufficientUserAuthentication,
    InvalidClaims,
    Verifier,
)
from oneauth.verifier.starlette import OneauthBackend, require, step_up_response
from oneauth.verifier.testing import TokenMinter

from ._support import LiveIssuer, rejected


class Clock:
    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def minter(clock: Clock) -> TokenMinter:
    return TokenMinter("https://auth.test/apps/shop", "shop", "orders-api", "ES256", clock=clock)


MFA = ["pwd", "otp", "mfa"]


def test_claims_require_amr(minter: TokenMinter) -> None:
    verifier = minter.verifier()
    pwd_only = verifier.verify(minter.mint())
    with pytest.raises(InsufficientUserAuthentication) as info:
        pwd_only.require(amr="mfa")
    exc = info.value
    assert (exc.check, exc.error_code) == ("amr", "insufficient_user_authentication")
    # What the client must ask for: oneauth's MFA class, since mfa was demanded.
    assert (exc.acr_values, exc.amr, exc.max_age) == ((ACR_MFA,), ("mfa",), None)
    with_mfa = verifier.verify(minter.mint(amr=MFA, acr=ACR_MFA))
    assert with_mfa.require(amr="mfa") is with_mfa
    assert with_mfa.require(amr=["otp", "mfa"]) is with_mfa
    with pytest.raises(InsufficientUserAuthentication):
        with_mfa.require(amr=["mfa", "hwk"])  # every listed method is needed


def test_claims_require_acr(minter: TokenMinter) -> None:
    verifier = minter.verifier()
    claims = verifier.verify(minter.mint(acr="urn:oneauth:acr:sfa"))
    assert claims.acr == "urn:oneauth:acr:sfa"
    with pytest.raises(InsufficientUserAuthentication) as info:
        claims.require(acr=[ACR_MFA, "urn:example:gold"])
    assert info.value.check == "acr"
    assert info.value.acr_values == (ACR_MFA, "urn:example:gold")  # order kept
    assert claims.require(acr="urn:example:gold urn:oneauth:acr:sfa") is claims
    # No acr claim at all satisfies no acr demand.
    bare = verifier.verify(minter.mint())
    assert bare.acr is None
    with pytest.raises(InsufficientUserAuthentication):
        bare.require(acr="urn:oneauth:acr:sfa")


def test_claims_require_max_age(minter: TokenMinter, clock: Clock) -> None:
    verifier = minter.verifier()
    signed_in = clock.now
    claims = verifier.verify(minter.mint(auth_time=int(signed_in) - 200))
    assert claims.require(max_age=300, now=clock.now) is claims
    with pytest.raises(InsufficientUserAuthentication) as info:
        claims.require(max_age=100, now=clock.now)
    assert (info.value.check, info.value.max_age, info.value.acr_values) == ("auth_time", 100, ())
    # A token without auth_time proves no recency, however generous max_age is.
    no_auth_time = verifier.verify(minter.mint(auth_time=None))
    with pytest.raises(InsufficientUserAuthentication) as info:
        no_auth_time.require(max_age=10**9, now=clock.now)
    assert info.value.check == "auth_time"


def test_client_tokens_never_satisfy_a_sign_in_demand(minter: TokenMinter) -> None:
    claims = minter.verifier().verify(minter.mint_client_token("worker", amr=MFA))
    assert claims.is_client_token
    with pytest.raises(InsufficientUserAuthentication):
        claims.require(amr="mfa")
    claims.require()  # no demand, nothing to refuse


def test_requirement_arguments_are_checked() -> None:
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="max_age"):
            AuthRequirement(max_age=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        AuthRequirement(amr=["mfa", ""])
    assert AuthRequirement().empty
    assert AuthRequirement(amr="mfa hwk").amr == ("mfa", "hwk")


async def test_acr_of_the_wrong_type_is_refused(minter: TokenMinter) -> None:
    verifier = minter.verifier()
    token = minter.mint(acr=["urn:oneauth:acr:mfa"])
    await rejected(verifier, token, "sync", InvalidClaims, "claims")


# -- the Starlette backend ----------------------------------------------------------


@require(amr="mfa")
async def payouts(request: Request) -> Response:
    return JSONResponse({"sub": request.user.claims.sub})


@require(scopes="orders:write", max_age=300)
def delete_order(request: Request) -> Response:
    return JSONResponse({"deleted": True})


@require(acr=[ACR_MFA, "urn:example:gold"], max_age=60)
async def both(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def manual(request: Request) -> Response:
    # A resource deciding itself, with the helper for the answer.
    try:
        request.user.claims.require(amr="hwk", now=request.user.clock())
    except InsufficientUserAuthentication as exc:
        return step_up_response(exc)
    return JSONResponse({"ok": True})


def build_app(verifier: Verifier) -> Starlette:
    return Starlette(
        routes=[
            Route("/payouts", payouts),
            Route("/orders/1", delete_order, methods=["DELETE"]),
            Route("/both", both),
            Route("/manual", manual),
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


async def test_missing_mfa_gets_the_rfc9470_challenge(
    client: httpx.AsyncClient, shop: LiveIssuer
) -> None:
    response = await client.get("/payouts", headers=bearer(shop.minter.mint()))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="the sign-in must include authentication method mfa", '
        f'acr_values="{ACR_MFA}"'
    )
    assert response.json()["error"] == "insufficient_user_authentication"
    assert response.headers["cache-control"] == "no-store"
    ok = await client.get("/payouts", headers=bearer(shop.minter.mint(amr=MFA, acr=ACR_MFA)))
    assert ok.status_code == 200


async def test_max_age_challenge_and_scope_first(
    client: httpx.AsyncClient, shop: LiveIssuer
) -> None:
    now = int(shop.minter.clock())
    old = shop.minter.mint(scope="orders:write", auth_time=now - 301)
    response = await client.delete("/orders/1", headers=bearer(old))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="a more recent sign-in is required", max_age="300"'
    )
    fresh = shop.minter.mint(scope="orders:write", auth_time=now - 5)
    assert (await client.delete("/orders/1", headers=bearer(fresh))).status_code == 200
    # A missing scope is a 403 before any step-up: signing in again would not add it.
    no_scope = shop.minter.mint(scope="orders:read", auth_time=now - 301)
    refused = await client.delete("/orders/1", headers=bearer(no_scope))
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"


async def test_acr_challenge_lists_acr_values_and_max_age(
    client: httpx.AsyncClient, shop: LiveIssuer
) -> None:
    response = await client.get(
        "/both", headers=bearer(shop.minter.mint(acr="urn:oneauth:acr:sfa"))
    )
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert f'acr_values="{ACR_MFA} urn:example:gold"' in challenge
    assert 'max_age="60"' in challenge
    ok = await client.get("/both", headers=bearer(shop.minter.mint(acr="urn:example:gold")))
    assert ok.status_code == 200


async def test_client_token_is_403_not_a_step_up(
    client: httpx.AsyncClient, shop: LiveIssuer
) -> None:
    token = shop.minter.mint_client_token("worker")
    response = await client.get("/payouts", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


async def test_step_up_response_helper(client: httpx.AsyncClient, shop: LiveIssuer) -> None:
    response = await client.get("/manual", headers=bearer(shop.minter.mint(amr=MFA)))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="the sign-in must include authentication method hwk"'
    )
    ok = await client.get("/manual", headers=bearer(shop.minter.mint(amr=["hwk", "user"])))
    assert ok.status_code == 200
