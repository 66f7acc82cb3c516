"""Issue 13: the authorization request for an organization (``organization_id``, the
scope ``organization:<slug>``), the org carried by the code into the session and the
tokens, and every way of asking for an org the user cannot use."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from oidc._support import RP, signup
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.oauth import clients
from oneauth.services import Services
from oneauth.settings import Settings

from ._authz import (
    ORG_SCOPES,
    add_member,
    authorize,
    drive,
    exchange,
    jwt_claims,
    make_org,
    query,
    register_rp,
    set_org,
    tokens_for,
)


@pytest.fixture
async def browser(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own (cookies), on the same service."""
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as b:
        yield b


def email() -> str:
    return f"org-{uuid.uuid4().hex[:8]}@example.com"


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code in (302, 303), response.text
    return query(response.headers["location"])


async def session_org(services: Services, app: AppRecord, sid: str) -> str | None:
    async with services.router.enter(app) as conn:
        value: str | None = await conn.fetchval(
            "SELECT org_id FROM sessions WHERE id = $1", uuid.UUID(sid)
        )
        return value


async def test_organization_id_and_slug_scope_give_org_scoped_tokens(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    client_id = register_rp(settings, app)
    address = email()
    sub = await signup(client, app.app_id, address)
    acme = await make_org(services, app, "acme", members=[sub])
    await make_org(services, app, "globex", members=[sub])

    verifier = secrets.token_urlsafe(48)
    first = await drive(
        browser,
        await authorize(browser, app, client_id, verifier, organization_id=acme),
        email=address,
    )
    tokens = await tokens_for(browser, app, client_id, first, verifier)
    _, id_claims = jwt_claims(tokens["id_token"])
    assert (id_claims["org_id"], id_claims["org_slug"]) == (acme, "acme")
    # The access token is org-scoped: the org and the member's org roles and permissions.
    _, access = jwt_claims(tokens["access_token"])
    assert (access["org_id"], access["org_slug"]) == (acme, "acme")
    assert access["org_roles"] == ["member"]
    assert access["org_permissions"] == ["org:read"]
    # The refresh token's family is for the org too (a plain refresh keeps it).
    refreshed = await browser.post(
        f"/apps/{app.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert jwt_claims(refreshed.json()["access_token"])[1]["org_id"] == acme
    # The scope says "for an organization"; which one is the org claims' business.
    assert tokens["scope"].split() == ["openid", "email", "profile", "organization"]
    assert await session_org(services, app, id_claims["sid"]) == acme

    # The same org by its slug (Keycloak's scope form), from the signed-in browser.
    verifier = secrets.token_urlsafe(48)
    second = await authorize(
        browser, app, client_id, verifier, scope="openid organization:acme", prompt="none"
    )
    tokens = await tokens_for(browser, app, client_id, second, verifier)
    _, id_claims = jwt_claims(tokens["id_token"])
    assert id_claims["org_id"] == acme
    assert tokens["scope"].split() == ["openid", "organization"]
    assert await session_org(services, app, id_claims["sid"]) == acme

    # Without an org form: no org, as before issue 13.
    verifier = secrets.token_urlsafe(48)
    plain = await authorize(browser, app, client_id, verifier, prompt="none")
    tokens = await tokens_for(browser, app, client_id, plain, verifier)
    _, id_claims = jwt_claims(tokens["id_token"])
    assert "org_id" not in id_claims
    assert "org_id" not in jwt_claims(tokens["access_token"])[1]
    assert await session_org(services, app, id_claims["sid"]) is None


async def test_unknown_other_app_and_not_a_member_get_one_answer(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    """Cross-app (B1): the same email in apps A and B, each with an org ``acme``. A's
    org id names nothing at B; ``organization:acme`` at B is B's acme, usable only once
    the user is a member there; and none of it tells B's client that A's org exists."""
    app_a, app_b = provision(), provision()
    address = email()
    sub_a = await signup(client, app_a.app_id, address)
    sub_b = await signup(client, app_b.app_id, address)
    acme_a = await make_org(services, app_a, "acme", members=[sub_a])
    acme_b = await make_org(services, app_b, "acme")
    client_b = register_rp(settings, app_b)
    issuer_b = settings.issuer_for(app_b.app_id)

    verifier = secrets.token_urlsafe(48)
    page = await authorize(browser, app_b, client_b, verifier, organization_id=acme_a)
    other_app = error_of(await drive(browser, page, email=address))
    unknown = error_of(
        await authorize(
            browser, app_b, client_b, verifier, organization_id="org_" + secrets.token_urlsafe(16)
        )
    )
    not_member = error_of(
        await authorize(browser, app_b, client_b, verifier, organization_id=acme_b)
    )
    by_slug = error_of(
        await authorize(browser, app_b, client_b, verifier, scope="openid organization:acme")
    )
    for answer in (other_app, unknown, not_member, by_slug):
        assert answer["error"] == "access_denied", answer
        assert answer["error_description"] == (
            "the user is not a member of the organization the application asked for"
        )
        assert answer["state"] == "st-123"
        assert answer["iss"] == issuer_b
        assert acme_a not in str(answer)

    # Made a member of B's acme: organization:acme at B is B's org, never A's.
    await add_member(services, app_b, acme_b, sub_b)
    verifier = secrets.token_urlsafe(48)
    ok = await drive(
        browser,
        await authorize(browser, app_b, client_b, verifier, scope="openid organization:acme"),
        email=address,
    )
    tokens = await tokens_for(browser, app_b, client_b, ok, verifier)
    _, id_claims = jwt_claims(tokens["id_token"])
    assert id_claims["org_id"] == acme_b != acme_a
    assert id_claims["app_id"] == app_b.app_id
    assert jwt_claims(tokens["access_token"])[1]["org_id"] == acme_b
    # A's org id stays unknown at B for this member of B's acme too.
    verifier = secrets.token_urlsafe(48)
    still = error_of(await authorize(browser, app_b, client_b, verifier, organization_id=acme_a))
    assert still["error"] == "access_denied"


async def test_suspended_org_is_refused_at_authorize_and_at_the_exchange(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    client_id = register_rp(settings, app, first_party=True)
    address = email()
    sub = await signup(client, app.app_id, address)
    acme = await make_org(services, app, "acme", members=[sub], status="suspended")
    verifier = secrets.token_urlsafe(48)
    page = await authorize(browser, app, client_id, verifier, organization_id=acme)
    refused = error_of(await drive(browser, page, email=address))
    # A member may learn why; a non-member learns nothing (previous test).
    assert refused["error"] == "access_denied"
    assert refused["error_description"] == "the organization is suspended"

    # Suspended after the code was issued: no org-scoped tokens from it.
    await set_org(services, app, acme, "UPDATE organizations SET status = 'active' WHERE id = $1")
    verifier = secrets.token_urlsafe(48)
    issued = await authorize(browser, app, client_id, verifier, organization_id=acme)
    code = query(issued.headers["location"])["code"]
    await set_org(
        services, app, acme, "UPDATE organizations SET status = 'suspended' WHERE id = $1"
    )
    answer = await exchange(browser, app.app_id, client_id, code, verifier)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert "organization" in answer.json()["error_description"]
    # The code is spent for good, even once the org is active again.
    await set_org(services, app, acme, "UPDATE organizations SET status = 'active' WHERE id = $1")
    again = await exchange(browser, app.app_id, client_id, code, verifier)
    assert again.json()["error"] == "invalid_grant"

    # Removed from the org between the code and the exchange: refused too.
    verifier = secrets.token_urlsafe(48)
    issued = await authorize(browser, app, client_id, verifier, organization_id=acme)
    code = query(issued.headers["location"])["code"]
    await set_org(
        services,
        app,
        acme,
        "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2",
        uuid.UUID(sub),
    )
    gone = await exchange(browser, app.app_id, client_id, code, verifier)
    assert gone.json()["error"] == "invalid_grant"


async def test_malformed_org_requests_are_refused_at_the_redirect_uri(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    client_id = register_rp(settings, app)
    plain_client = register_rp(settings, app, scopes=("openid", "email", "profile"))
    verifier = secrets.token_urlsafe(48)
    acme = "org_" + secrets.token_urlsafe(16)
    cases = [
        ({"organization_id": "acme"}, "invalid_request"),
        ({"organization_id": ""}, "invalid_request"),
        ({"organization_id": "org_" + "x" * 80}, "invalid_request"),
        ({"scope": "openid organization:Not_A_Slug"}, "invalid_scope"),
        ({"scope": "openid organization:acme organization:globex"}, "invalid_scope"),
        ({"scope": "openid organization:acme", "organization_id": acme}, "invalid_request"),
    ]
    for extra, error in cases:
        answer = error_of(await authorize(browser, app, client_id, verifier, **extra))
        assert answer["error"] == error, (extra, answer)
        assert answer["state"] == "st-123"
    # A client not registered for organizations cannot ask for one, in any form.
    for extra in (
        {"organization_id": acme},
        {"scope": "openid organization"},
        {"scope": "openid organization:acme"},
    ):
        answer = error_of(await authorize(browser, app, plain_client, verifier, **extra))
        assert answer["error"] == "invalid_scope", answer
        assert "organization" in answer["error_description"]
    # An unregistered redirect URI: our error page, never a redirect (O1), whatever the org.
    bad = await authorize(
        browser,
        app,
        client_id,
        verifier,
        organization_id="acme",
        redirect_uri="https://evil.example.com/cb",
    )
    assert bad.status_code == 400
    assert "location" not in bad.headers


async def test_third_party_consent_names_the_organization_scope_and_rechecks_the_org(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    client_id = register_rp(settings, app)
    address = email()
    sub = await signup(client, app.app_id, address)
    acme = await make_org(services, app, "acme", members=[sub])
    verifier = secrets.token_urlsafe(48)
    page = await authorize(browser, app, client_id, verifier, organization_id=acme)
    consent = await drive(browser, page, email=address, consent="")
    # drive posted decision="" (deny) only if it found the consent page: start again.
    assert consent.status_code in (302, 303)
    assert query(consent.headers["location"])["error"] == "access_denied"
    verifier = secrets.token_urlsafe(48)
    page = await authorize(browser, app, client_id, verifier, organization_id=acme)
    assert page.status_code == 200
    assert "Act in the organization you choose" in page.text
    # Suspended while the consent page is open: allowing it gives no code.
    await set_org(
        services, app, acme, "UPDATE organizations SET status = 'suspended' WHERE id = $1"
    )
    answer = error_of(await drive(browser, page, email=address))
    assert answer["error"] == "access_denied"
    assert answer["error_description"] == "the organization is suspended"


async def test_concurrent_exchanges_of_an_org_code_give_one_session(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    client_id = register_rp(settings, app, first_party=True)
    address = email()
    sub = await signup(client, app.app_id, address)
    acme = await make_org(services, app, "acme", members=[sub])
    verifier = secrets.token_urlsafe(48)
    page = await authorize(browser, app, client_id, verifier, organization_id=acme)
    code = query((await drive(browser, page, email=address)).headers["location"])["code"]
    answers = await asyncio.gather(
        *(exchange(browser, app.app_id, client_id, code, verifier) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]
    async with services.router.enter(app) as conn:
        live = await conn.fetchval(
            "SELECT count(*) FROM sessions WHERE org_id = $1 AND revoked_at IS NULL", acme
        )
    # The reuse revoked what the first exchange made (O3): no live org session is left.
    assert live == 0


async def test_a_client_registered_for_an_org_gets_that_org_only(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    address = email()
    sub = await signup(client, app.app_id, address)
    acme = await make_org(services, app, "acme", members=[sub])
    globex = await make_org(services, app, "globex", members=[sub])
    spec = clients.ClientSpec(
        name="Acme's own portal",
        kind="confidential",
        grant_types=frozenset({"authorization_code", "client_credentials"}),
        scopes=frozenset(ORG_SCOPES),
        redirect_uris=(RP,),
        first_party=True,
        org_id=acme,
    )
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        made, secret = clients.create(conn, spec)
    client_id = made.client_id
    verifier = secrets.token_urlsafe(48)
    page = await authorize(browser, app, client_id, verifier, organization_id=globex)
    refused = error_of(await drive(browser, page, email=address))
    assert refused["error"] == "access_denied"
    by_slug = await authorize(browser, app, client_id, verifier, scope="openid organization:globex")
    assert error_of(by_slug)["error"] == "access_denied"
    # The bare scope: its org, without the picker, though the user has two.
    for extra in ({"scope": "openid organization"}, {"organization_id": acme}):
        verifier = secrets.token_urlsafe(48)
        ok = await authorize(browser, app, client_id, verifier, **extra)
        code = query(ok.headers["location"])["code"]
        answer = await exchange(browser, app.app_id, client_id, code, verifier, secret=secret)
        assert answer.status_code == 200, answer.text
        assert jwt_claims(answer.json()["access_token"])[1]["org_id"] == acme


async def test_discovery_names_the_organization_scope_and_claims(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    doc = (await client.get(f"/apps/{app.app_id}/.well-known/openid-configuration")).json()
    assert "organization" in doc["scopes_supported"]
    assert {"org_id", "org_slug"} <= set(doc["claims_supported"])
