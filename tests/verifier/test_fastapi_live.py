"""oneauth_verifier.fastapi on real tokens of the live service.

A FastAPI resource server whose Verifier fetches discovery and the JWKS from the
live oneauth (in-process, over ASGI), called with tokens the service issued: a
password sign-in, a refresh into an organization with an app role and permission,
a password + TOTP sign-in (acr mfa), and another app's token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette

from apiclient import default_client_id, signup
from mfa.conftest import mfa_login, user_with_totp
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth_verifier import ACR_MFA, AccessTokenClaims, Verifier
from oneauth_verifier.fastapi import install, require
from orgtokens._support import add_member, add_scope, grant_role, make_org, refresh


def resource_server(verifier: Verifier) -> FastAPI:
    api = FastAPI()
    install(api, verifier)

    @api.get("/orgs/{org_id}/invoices")
    async def invoices(
        org_id: str,
        claims: AccessTokenClaims = Depends(
            require(
                role="billing",
                permission="invoice:read",
                org_role="admin",
                org_path_param="org_id",
            )
        ),
    ) -> dict[str, Any]:
        return {"org_id": claims.org_id, "roles": sorted(claims.roles)}

    @api.get("/vault")
    def vault(claims: AccessTokenClaims = Depends(require(acr=ACR_MFA))) -> dict[str, Any]:
        return {"sub": claims.sub, "acr": claims.acr}

    return api


@pytest.fixture
async def issuer_http(service: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """What the verifier fetches discovery and JWKS through: the live service."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service)) as http:
        yield http


def verifier_for(settings: Settings, app: AppRecord, http: httpx.AsyncClient) -> Verifier:
    issuer = settings.issuer_for(app.app_id)
    return Verifier(issuer, f"{issuer}/api", app.app_id, async_http_client=http)


async def call(verifier: Verifier, path: str, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=resource_server(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://rs.test") as rs:
        return await rs.get(path, headers={"authorization": f"Bearer {token}"})


async def test_fastapi_dependency_on_live_tokens(
    client: httpx.AsyncClient,
    issuer_http: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    app, other = provision(), provision()
    cid = await default_client_id(client, app.app_id)
    add_scope(settings, app, cid, "permissions")
    services.clients.on_change(app.app_id)
    body = await signup(client, app.app_id, "fastapi@example.com")
    user_id = body["user"]["id"]
    acme = await make_org(services, app.app_id, "acme")
    globex = await make_org(services, app.app_id, "globex")
    await add_member(services, app.app_id, acme, user_id, ["admin"])
    await add_member(services, app.app_id, globex, user_id, ["admin"])
    verifier = verifier_for(settings, app, issuer_http)

    # A plain sign-in: valid, but no role, no org; no second factor.
    plain = body["access_token"]
    refused = await call(verifier, f"/orgs/{acme}/invoices", plain)
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", error_description="subject lacks a required role"'
    )
    refused = await call(verifier, "/vault", plain)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="a different authentication level is required", '
        f'acr_values="{ACR_MFA}"'
    )

    # The role with its permission, then into acme: its invoices, not globex's.
    await grant_role(services, app.app_id, user_id, "billing", ["invoice:read"])
    tokens = (await refresh(client, app.app_id, cid, body["refresh_token"])).json()
    no_org = await call(verifier, f"/orgs/{acme}/invoices", tokens["access_token"])
    assert no_org.json() == {
        "error": "insufficient_scope",
        "error_description": "a token for an organization is required",
    }
    in_acme = (
        await refresh(client, app.app_id, cid, tokens["refresh_token"], organization_id=acme)
    ).json()
    served = await call(verifier, f"/orgs/{acme}/invoices", in_acme["access_token"])
    assert served.status_code == 200, served.text
    assert served.json() == {"org_id": acme, "roles": ["billing"]}
    elsewhere = await call(verifier, f"/orgs/{globex}/invoices", in_acme["access_token"])
    assert elsewhere.status_code == 403
    assert elsewhere.json()["error_description"] == (
        "the token is for another organization than this URL's"
    )

    # Password + TOTP: acr mfa, the vault opens (a sync endpoint).
    email, secret, _, _ = await user_with_totp(client, services, app)
    stepped_up = (await mfa_login(client, app, email, secret))["access_token"]
    opened = await call(verifier, "/vault", stepped_up)
    assert opened.status_code == 200, opened.text
    assert opened.json()["acr"] == ACR_MFA

    # Cross-app: another app's valid token (same service, same user email) is no token here.
    theirs = (await signup(client, other.app_id, "fastapi@example.com"))["access_token"]
    for path in ("/vault", f"/orgs/{acme}/invoices"):
        answer = await call(verifier, path, theirs)
        assert answer.status_code == 401
        assert answer.json()["error"] == "invalid_token"
        assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
