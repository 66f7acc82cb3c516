"""Issue 13: the organization picker of the authorization request (bare
``organization`` scope): none, one or several orgs, ``prompt=none`` and
``prompt=select_account``, the picker's POST (CSRF, a forged or stale choice)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from oidc._support import forms, signup
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._authz import (
    authorize,
    drive,
    jwt_claims,
    make_org,
    query,
    register_rp,
    set_org,
    tokens_for,
)

ORG = "openid organization"


@pytest.fixture
async def browser(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as b:
        yield b


def email() -> str:
    return f"pick-{uuid.uuid4().hex[:8]}@example.com"


def offered(html: str) -> list[str]:
    """The org ids the picker's buttons offer."""
    (page,) = forms(html)
    return [value for name, value in page.buttons if name == "organization_id"]


async def test_picker_lists_the_users_active_orgs_of_this_app_and_continues_with_the_pick(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app, other = provision(), provision()
    client_id = register_rp(settings, app, first_party=True)
    address = email()
    sub = await signup(client, app.app_id, address)
    other_sub = await signup(client, other.app_id, address)
    acme = await make_org(
        services,
        app,
        "acme",
        name="Acme Corp",
        members=[sub],
        branding={"display_name": "ACME Widgets", "primary_color": "#c0ffee"},
    )
    globex = await make_org(
        services,
        app,
        "globex",
        members=[sub],
        branding={"logo_url": "https://cdn.example.com/globex.png"},
    )
    suspended = await make_org(services, app, "initech", members=[sub], status="suspended")
    not_mine = await make_org(services, app, "hooli")
    elsewhere = await make_org(services, other, "umbrella", members=[other_sub])

    verifier = secrets.token_urlsafe(48)
    page = await drive(
        browser, await authorize(browser, app, client_id, verifier, scope=ORG), email=address
    )
    assert page.status_code == 200, page.text
    assert "Choose an organization" in page.text
    assert sorted(offered(page.text)) == sorted([acme, globex])
    for absent in (suspended, not_mine, elsewhere, "Hooli", "Umbrella", "Initech"):
        assert absent not in page.text
    # Each org's branding inside the app's page: its display name, its logo or colour.
    assert "ACME Widgets" in page.text
    assert 'fill="#c0ffee"' in page.text
    assert 'src="https://cdn.example.com/globex.png"' in page.text
    assert "style=" not in page.text  # the CSP has no inline style
    assert "form-action 'self' https://rp.example.com" in page.headers["content-security-policy"]
    # prompt=none cannot show the picker (OIDC Core 3.1.2.6).
    silent = await authorize(browser, app, client_id, verifier, scope=ORG, prompt="none")
    assert query(silent.headers["location"])["error"] == "account_selection_required"

    done = await drive(browser, page, email=address, pick=globex)
    tokens = await tokens_for(browser, app, client_id, done, verifier)
    _, id_claims = jwt_claims(tokens["id_token"])
    assert (id_claims["org_id"], id_claims["org_slug"]) == (globex, "globex")
    assert tokens["scope"].split() == ["openid", "organization"]


async def test_picker_refuses_a_forged_or_stale_choice_and_a_missing_csrf_token(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app, other = provision(), provision()
    client_id = register_rp(settings, app, first_party=True)
    address = email()
    sub = await signup(client, app.app_id, address)
    other_sub = await signup(client, other.app_id, address)
    acme = await make_org(services, app, "acme", members=[sub])
    globex = await make_org(services, app, "globex", members=[sub])
    not_mine = await make_org(services, app, "hooli")
    other_app = await make_org(services, other, "acme", members=[other_sub])
    verifier = secrets.token_urlsafe(48)
    page = await drive(
        browser, await authorize(browser, app, client_id, verifier, scope=ORG), email=address
    )
    (picker,) = forms(page.text)
    for forged in (not_mine, other_app, "org_" + secrets.token_urlsafe(16), "nonsense", ""):
        again = await browser.post(picker.action, data={**picker.fields, "organization_id": forged})
        assert again.status_code == 400, forged
        assert "Choose one of your organizations" in again.text
        assert "location" not in again.headers
        assert sorted(offered(again.text)) == sorted([acme, globex])
    # Without the CSRF token: refused, nothing continues.
    no_csrf = {k: v for k, v in picker.fields.items() if k != "csrf"}
    refused = await browser.post(picker.action, data={**no_csrf, "organization_id": acme})
    assert refused.status_code == 403
    # An org suspended while the picker was open: the pick is refused, the rest offered.
    await set_org(
        services, app, globex, "UPDATE organizations SET status = 'suspended' WHERE id = $1"
    )
    stale = await browser.post(picker.action, data={**picker.fields, "organization_id": globex})
    assert stale.status_code == 400
    assert offered(stale.text) == [acme]
    done = await drive(browser, page, email=address, pick=acme)
    tokens = await tokens_for(browser, app, client_id, done, verifier)
    assert jwt_claims(tokens["id_token"])[1]["org_id"] == acme


async def test_one_org_is_picked_without_a_page_and_none_is_access_denied(
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
    await make_org(services, app, "hooli")  # exists, but not the user's
    verifier = secrets.token_urlsafe(48)
    none = await drive(
        browser, await authorize(browser, app, client_id, verifier, scope=ORG), email=address
    )
    answer = query(none.headers["location"])
    assert answer["error"] == "access_denied"
    assert answer["error_description"] == (
        "the user is not a member of any active organization of this app"
    )
    acme = await make_org(services, app, "acme", members=[sub])
    # One org: chosen without a page, even with prompt=none.
    verifier = secrets.token_urlsafe(48)
    one = await authorize(browser, app, client_id, verifier, scope=ORG, prompt="none")
    tokens = await tokens_for(browser, app, client_id, one, verifier)
    assert jwt_claims(tokens["id_token"])[1]["org_id"] == acme
    # prompt=select_account: the user confirms even the one org.
    verifier = secrets.token_urlsafe(48)
    confirm = await authorize(browser, app, client_id, verifier, scope=ORG, prompt="select_account")
    assert confirm.status_code == 200
    assert offered(confirm.text) == [acme]
    done = await drive(browser, confirm, email=address, pick=acme)
    assert "code" in query(done.headers["location"])
