"""Issue 13: the verifier's role, permission and organization demands, in a real
Starlette resource server, on real tokens of the live service (keys fetched
from its JWKS), and on TokenMinter tokens for resource servers' own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from apiclient import default_client_id, signup
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.verifier import AccessRequirement, InsufficientScope, InvalidClaims, Verifier
from oneauth.verifier.starlette import OneauthBackend, require, require_org
from oneauth.verifier.testing import TokenMinter

from ._support import add_member, add_scope, grant_role, make_org, org_client, refresh


@require(permission="invoice:read")
async def invoices(request: Request) -> Response:
    return JSONResponse({"permissions": sorted(request.user.claims.permissions)})


@require(role="billing")
async def billing(request: Request) -> Response:
    return JSONResponse({"roles": sorted(request.user.claims.roles)})


@require_org()
async def dashboard(request: Request) -> Response:
    claims = request.user.claims
    return JSONResponse({"org_id": claims.org_id, "org_slug": claims.org_slug})


@require_org(org_permission="org:members:write", path_param="org_id")
async def members(request: Request) -> Response:
    return JSONResponse({"org_id": request.path_params["org_id"]})


@require_org("acme", org_role="admin", allow_client_tokens=False)
async def acme_admin(request: Request) -> Response:
    return JSONResponse({"org_roles": sorted(request.user.claims.org_roles)})


def resource_server(verifier: Verifier) -> Starlette:
    return Starlette(
        routes=[
            Route("/invoices", invoices),
            Route("/billing", billing),
            Route("/dashboard", dashboard),
            Route("/orgs/{org_id}/members", members),
            Route("/acme-admin", acme_admin),
        ],
        middleware=[OneauthBackend(verifier).middleware()],
    )


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


def refused(answer: httpx.Response, description: str) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json() == {"error": "insufficient_scope", "error_description": description}
    assert answer.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", error_description="{description}"'
    )


async def test_resource_server_enforces_roles_permissions_and_orgs_on_live_tokens(
    client: httpx.AsyncClient,
    issuer_http: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    add_scope(settings, app, cid, "permissions")
    services.clients.on_change(app.app_id)
    body = await signup(client, app.app_id, "rs@example.com")
    user_id = body["user"]["id"]
    acme = await make_org(services, app.app_id, "acme")
    globex = await make_org(services, app.app_id, "globex")
    await add_member(services, app.app_id, acme, user_id, ["admin"])
    await add_member(services, app.app_id, globex, user_id, ["member"])
    verifier = verifier_for(settings, app, issuer_http)

    # No role, no org yet: every demand refused with what is missing.
    plain = body["access_token"]
    refused(await call(verifier, "/invoices", plain), "token lacks a required permission")
    refused(await call(verifier, "/billing", plain), "subject lacks a required role")
    refused(await call(verifier, "/dashboard", plain), "a token for an organization is required")

    await grant_role(services, app.app_id, user_id, "billing", ["invoice:read"])
    tokens = (await refresh(client, app.app_id, cid, body["refresh_token"])).json()
    assert (await call(verifier, "/invoices", tokens["access_token"])).json() == {
        "permissions": ["invoice:read"]
    }
    assert (await call(verifier, "/billing", tokens["access_token"])).status_code == 200
    # Narrowed without scope "permissions": the role stays, the permission is not claimed.
    narrowed = (
        await refresh(client, app.app_id, cid, tokens["refresh_token"], scope="openid email")
    ).json()
    assert (await call(verifier, "/billing", narrowed["access_token"])).status_code == 200
    refused(
        await call(verifier, "/invoices", narrowed["access_token"]),
        "token lacks a required permission",
    )

    # Into acme (admin): its members page, not globex's.
    in_acme = (
        await refresh(client, app.app_id, cid, narrowed["refresh_token"], organization_id=acme)
    ).json()
    token = in_acme["access_token"]
    assert (await call(verifier, "/dashboard", token)).json() == {
        "org_id": acme,
        "org_slug": "acme",
    }
    assert (await call(verifier, f"/orgs/{acme}/members", token)).status_code == 200
    refused(
        await call(verifier, f"/orgs/{globex}/members", token),
        "the token is for another organization than this URL's",
    )
    assert (await call(verifier, "/acme-admin", token)).json() == {"org_roles": ["admin"]}

    # Switched to globex (member): its own page needs org:members:write, which it lacks.
    in_globex = (
        await refresh(client, app.app_id, cid, in_acme["refresh_token"], organization="globex")
    ).json()
    token = in_globex["access_token"]
    assert (await call(verifier, "/dashboard", token)).json()["org_id"] == globex
    refused(
        await call(verifier, f"/orgs/{globex}/members", token),
        "member lacks a required organization permission",
    )
    refused(await call(verifier, "/acme-admin", token), "a token for the organization is required")

    # An org client's token: of its org, with no member rights.
    org_cid, secret = org_client(settings, app, acme)
    made = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(org_cid, secret),
    )
    machine = made.json()["access_token"]
    assert (await call(verifier, "/dashboard", machine)).json()["org_id"] == acme
    refused(
        await call(verifier, f"/orgs/{acme}/members", machine),
        "member lacks a required organization permission",
    )
    refused(await call(verifier, "/acme-admin", machine), "client tokens are not accepted here")


async def test_other_apps_org_token_is_refused_by_the_resource_server(
    client: httpx.AsyncClient,
    issuer_http: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    a, b = provision(), provision()
    cid_b = await default_client_id(client, b.app_id)
    body_b = await signup(client, b.app_id, "same@example.com")
    acme_b = await make_org(services, b.app_id, "acme")
    await add_member(services, b.app_id, acme_b, body_b["user"]["id"], ["admin"])
    token_b = (
        await refresh(client, b.app_id, cid_b, body_b["refresh_token"], organization="acme")
    ).json()["access_token"]
    answer = await call(verifier_for(settings, a, issuer_http), "/acme-admin", token_b)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"


def test_token_minter_mints_org_tokens_the_verifier_reads() -> None:
    minter = TokenMinter("https://auth.test/apps/shop", app_id="shop", audience="api")
    verifier = minter.verifier()
    claims = verifier.verify(
        minter.mint(
            roles=["billing"],
            permissions=["invoice:read", "invoice:read"],
            org_id="org_acme0000000000000",
            org_slug="acme",
            org_roles=["admin"],
            org_permissions=["org:members:write"],
        )
    )
    assert claims.permissions == frozenset({"invoice:read"})
    assert (claims.org_id, claims.org_slug) == ("org_acme0000000000000", "acme")
    assert claims.has_org_role("admin")
    assert claims.has_org_permission("org:members:write")
    assert claims.in_org("acme")
    assert claims.in_org("org_acme0000000000000")
    assert not claims.in_org("globex")
    assert claims.require_access(org="acme", org_role="admin", permission="invoice:read") is claims
    with pytest.raises(InsufficientScope) as info:
        claims.require_access(org_permission="org:settings:write")
    assert info.value.check == "org_permission"
    plain = verifier.verify(minter.mint())
    assert (plain.org_id, plain.org_roles, plain.permissions) == (None, frozenset(), frozenset())
    assert not plain.has_org_role()
    with pytest.raises(InsufficientScope) as info:
        AccessRequirement(org=True).check(plain)
    assert info.value.check == "org"
    machine = verifier.verify(minter.mint_client_token(org_id="org_acme0000000000000"))
    assert machine.is_client_token
    assert machine.org_slug == "acme0000000000000"


@pytest.mark.parametrize(
    "bad",
    [
        {"org_id": 7},
        {"org_id": ""},
        {"org_roles": "admin", "org_id": "org_x000000000000000"},
        {"org_permissions": [1], "org_id": "org_x000000000000000"},
        {"permissions": "invoice:read"},
        {"org_roles": ["admin"]},  # org roles without the org they belong to
        {"org_slug": "acme"},
    ],
)
def test_org_claims_of_the_wrong_shape_are_refused(bad: dict[str, object]) -> None:
    minter = TokenMinter("https://auth.test/apps/shop", app_id="shop", audience="api")
    with pytest.raises(InvalidClaims):
        minter.verifier().verify(minter.sign({**minter.claims(), **bad}))
