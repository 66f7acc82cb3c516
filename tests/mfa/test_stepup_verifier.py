"""Issue 12: the verifier's step-up demands on tokens of a real provisioned app (RFC 9470).

The tokens come from the live service over HTTP (a password sign-in, then a sign-in with
password and a TOTP code computed from the enrolment secret), the verifier fetches the
app's JWKS from the live service, and a Starlette resource server with
``require(amr="mfa")`` / ``require(acr=...)`` / ``require(max_age=...)`` answers the
RFC 9470 challenge.
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

from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.verifier import ACR_MFA, Verifier
from oneauth.verifier.starlette import OneauthBackend, require

from .conftest import mfa_login, signup, user_with_totp


@require(amr="mfa")
async def payouts(request: Request) -> Response:
    return JSONResponse({"sub": request.user.claims.sub, "amr": list(request.user.claims.amr)})


@require(max_age=300)
async def recent(request: Request) -> Response:
    return JSONResponse({"sub": request.user.claims.sub})


@require(acr=ACR_MFA)
async def vault(request: Request) -> Response:
    return JSONResponse({"acr": request.user.claims.acr})


def resource_server(verifier: Verifier) -> Starlette:
    return Starlette(
        routes=[Route("/payouts", payouts), Route("/recent", recent), Route("/vault", vault)],
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


async def test_token_without_mfa_gets_the_challenge_and_after_step_up_passes(
    client: httpx.AsyncClient,
    issuer_http: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    app = provision()
    email, secret, _, _ = await user_with_totp(client, services, app)
    verifier = verifier_for(settings, app, issuer_http)
    # A user of the app signed in with a password only.
    one_factor = (await signup(client, app, "other-" + email))["access_token"]
    claims = await verifier.averify(one_factor)
    assert "mfa" not in claims.amr
    for path in ("/payouts", "/vault"):
        refused = await resource(verifier, path, one_factor)
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="insufficient_user_authentication", ')
        assert f'acr_values="{ACR_MFA}"' in challenge
        assert refused.json()["error"] == "insufficient_user_authentication"
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="a different authentication level is required", '
        f'acr_values="{ACR_MFA}"'
    )

    # Step-up: password and TOTP code at the token endpoint of the app.
    stepped_up = (await mfa_login(client, app, email, secret))["access_token"]
    claims = await verifier.averify(stepped_up)
    for path in ("/payouts", "/vault"):
        passed = await resource(verifier, path, stepped_up)
        assert passed.status_code == 200, passed.text
    assert (await resource(verifier, "/payouts", stepped_up)).json() == {
        "sub": claims.sub,
        "amr": ["pwd", "otp", "mfa"],
    }
    assert claims.acr == ACR_MFA


async def test_max_age_too_old_is_refused(
    client: httpx.AsyncClient,
    issuer_http: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    app = provision()
    token = (await signup(client, app, "recent@example.com"))["access_token"]
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
    email, secret, _, _ = await user_with_totp(client, services, a)
    token_a = (await mfa_login(client, a, email, secret))["access_token"]
    assert (
        await resource(verifier_for(settings, a, issuer_http), "/payouts", token_a)
    ).status_code == 200
    # B's resource server refuses A's stepped-up token as a token, not as a sign-in.
    response = await resource(verifier_for(settings, b, issuer_http), "/payouts", token_a)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "insufficient_user_authentication" not in response.headers["www-authenticate"]
