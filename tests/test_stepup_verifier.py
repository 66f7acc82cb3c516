"""Issue 12: the verifier's step-up demands on tokens of a real provisioned app (RFC 9470).

The tokens come from the live service (signup over HTTP; the MFA token is signed with
the app's own keys as the token endpoint would sign it after a second factor), the
verifier fetches the app's JWKS from the live service, and a Starlette resource server
with ``require(amr="mfa")`` / ``require(max_age=...)`` answers the challenge.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from apiclient import signup
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.verifier import ACR_MFA, Verifier
from oneauth.verifier.starlette import OneauthBackend, require


@require(amr="mfa")
async def payouts(request: Request) -> Response:
    return JSONResponse({"sub": request.user.claims.sub, "amr": list(request.user.claims.amr)})


@require(max_age=300)
async def recent(request: Request) -> Response:
    return JSONResponse({"sub": request.user.claims.sub})


def resource_server(verifier: Verifier) -> Starlette:
    return Starlette(
        routes=[Route("/payouts", payouts), Route("/recent", recent)],
        middleware=[OneauthBackend(verifier).middleware()],
    )


@pytest.fixture
async def issuer_http(service: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """What the verifier fetches discovery and JWKS through: the live service."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service)) as http:
        yield http


def verifier_for(
    settings: Settings,
    app: AppRecord,
    http: httpx.AsyncClient,
    clock: Callable[[], float] = time.time,
) -> Verifier:
    issuer = settings.issuer_for(app.app_id)
    return Verifier(issuer, f"{issuer}/api", app.app_id, async_http_client=http, clock=clock)


async def resource(verifier: Verifier, path: str, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=resource_server(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://rs.test") as rs:
        return await rs.get(path, headers={"authorization": f"Bearer {token}"})


async def mfa_token(services: Services, app: AppRecord, sub: str, client_id: str) -> str:
    """An access token of ``app`` for a sign-in with two factors, signed with its keys."""
    async with services.router.app(app.app_id) as conn:
        issuer = await services.issuer(app, conn)
    token, _ = issuer.access_token(
        sub=sub,
        client_id=client_id,
        scope="",
        ttl=600,
        amr=["pwd", "otp", "mfa"],
        auth_time=int(time.time()),
    )
    return token


async def test_token_without_mfa_gets_the_challenge_and_with_it_passes(
    client: httpx.AsyncClient,
    issuer_http: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    app = provision()
    tokens = await signup(client, app.app_id, "stepup@example.com")
    verifier = verifier_for(settings, app, issuer_http)
    claims = await verifier.averify(tokens["access_token"])
    assert "mfa" not in claims.amr

    refused = await resource(verifier, "/payouts", tokens["access_token"])
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="the sign-in must include authentication method mfa", '
        f'acr_values="{ACR_MFA}"'
    )
    assert refused.json()["error"] == "insufficient_user_authentication"

    stepped_up = await mfa_token(services, app, claims.sub, claims.client_id)
    passed = await resource(verifier, "/payouts", stepped_up)
    assert passed.status_code == 200, passed.text
    assert passed.json() == {"sub": claims.sub, "amr": ["pwd", "otp", "mfa"]}


async def test_max_age_too_old_is_refused(
    client: httpx.AsyncClient,
    issuer_http: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    app = provision()
    token = (await signup(client, app.app_id, "recent@example.com"))["access_token"]
    now = verifier_for(settings, app, issuer_http)
    assert (await resource(now, "/recent", token)).status_code == 200
    # The same token seen 400 s later: still unexpired (600 s), but the sign-in is too old.
    later = verifier_for(settings, app, issuer_http, clock=lambda: time.time() + 400)
    refused = await resource(later, "/recent", token)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="a more recent sign-in is required", max_age="300"'
    )


async def test_mfa_token_of_app_a_is_no_token_at_app_b(
    client: httpx.AsyncClient,
    issuer_http: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    a, b = provision(), provision()
    claims_a = await verifier_for(settings, a, issuer_http).averify(
        (await signup(client, a.app_id, "cross@example.com"))["access_token"]
    )
    token_a = await mfa_token(services, a, claims_a.sub, claims_a.client_id)
    # B's resource server refuses A's stepped-up token as a token, not as a sign-in.
    response = await resource(verifier_for(settings, b, issuer_http), "/payouts", token_a)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "insufficient_user_authentication" not in response.headers["www-authenticate"]
