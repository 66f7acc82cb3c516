"""Issue 13: an org with ``mfa_required`` demands a second factor of every sign-in
that gets tokens for it, in an app whose own policy asks for none (``mfa=off``):
at the first sign-in, as a step-up of a one-factor browser session, after the
picker, with ``prompt=none`` (``interaction_required``), and an enrolment for a
member with no factor."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from mfa.conftest import code_for, enrol_totp, forget_last_step
from oidc._support import PASSWORD, forms
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._authz import authorize, drive, jwt_claims, make_org, query, register_rp, tokens_for

MFA = "urn:oneauth:acr:mfa"


@pytest.fixture
async def browser(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as b:
        yield b


async def member(client: httpx.AsyncClient, app: AppRecord) -> tuple[str, str, str]:
    """A user of ``app``: (email, sub, access token)."""
    address = f"mfa-org-{uuid.uuid4().hex[:8]}@example.com"
    r = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": address, "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    client.cookies.clear()
    return address, r.json()["user"]["id"], r.json()["access_token"]


def totp_form(html: str) -> Any:
    for f in forms(html):
        if f.fields.get("factor") == "totp":
            return f
    raise AssertionError(f"no second-factor form in:\n{html}")


async def second_factor(
    browser: httpx.AsyncClient, page: httpx.Response, secret: str
) -> httpx.Response:
    assert page.status_code == 200, page.text
    assert "Two-step verification" in page.text
    assert not [f for f in forms(page.text) if "password" in f.fields]
    step = totp_form(page.text)
    return await browser.post(step.action, data={**step.fields, "code": code_for(secret)})


async def test_org_mfa_at_sign_in_as_step_up_and_after_the_picker(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision(app_settings={"mfa": "off"})  # the app asks nobody for a second factor
    client_id = register_rp(settings, app, first_party=True)
    address, sub, token = await member(client, app)
    secret, _, _ = await enrol_totp(client, app, token)
    await forget_last_step(services, app)
    secure = await make_org(services, app, "secure", members=[sub], mfa_required=True)
    relaxed = await make_org(services, app, "relaxed", members=[sub])

    # 1. A fresh sign-in for the org: password, then the TOTP code at once.
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as b:
        verifier = secrets.token_urlsafe(48)
        page = await drive(
            b, await authorize(b, app, client_id, verifier, organization_id=secure), email=address
        )
        done = await drive(b, await second_factor(b, page, secret), email=address)
        tokens = await tokens_for(b, app, client_id, done, verifier)
        _, claims = jwt_claims(tokens["id_token"])
        assert claims["org_id"] == secure
        assert claims["acr"] == MFA
        assert "mfa" in claims["amr"]
    await forget_last_step(services, app)

    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as b:
        # 2. Signed in with a password only (no org, or an org without the rule): enough.
        verifier = secrets.token_urlsafe(48)
        plain = await drive(b, await authorize(b, app, client_id, verifier), email=address)
        assert jwt_claims((await tokens_for(b, app, client_id, plain, verifier))["id_token"])[1][
            "amr"
        ] == ["pwd"]
        verifier = secrets.token_urlsafe(48)
        other = await authorize(b, app, client_id, verifier, organization_id=relaxed, prompt="none")
        assert "code" in query(other.headers["location"])
        # The secure org from that browser: prompt=none cannot, the page steps it up.
        verifier = secrets.token_urlsafe(48)
        silent = await authorize(b, app, client_id, verifier, organization_id=secure, prompt="none")
        assert query(silent.headers["location"])["error"] == "interaction_required"
        page = await authorize(b, app, client_id, verifier, organization_id=secure)
        done = await drive(b, await second_factor(b, page, secret), email=address)
        tokens = await tokens_for(b, app, client_id, done, verifier)
        _, claims = jwt_claims(tokens["id_token"])
        assert claims["org_id"] == secure
        assert "mfa" in claims["amr"]
        # Now the browser's sign-in has both factors: prompt=none gets its code.
        verifier = secrets.token_urlsafe(48)
        again = await authorize(
            b, app, client_id, verifier, scope="openid organization:secure", prompt="none"
        )
        assert "code" in query(again.headers["location"])
    await forget_last_step(services, app)

    # 3. The picker: the secure org picked from a one-factor sign-in is stepped up.
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as b:
        verifier = secrets.token_urlsafe(48)
        start = await authorize(b, app, client_id, verifier, scope="openid organization")
        picker = await drive(b, start, email=address)
        assert "Choose an organization" in picker.text
        page = await drive(b, picker, email=address, pick=secure)
        done = await drive(b, await second_factor(b, page, secret), email=address)
        tokens = await tokens_for(b, app, client_id, done, verifier)
        _, claims = jwt_claims(tokens["id_token"])
        assert claims["org_id"] == secure
        assert "mfa" in claims["amr"]


async def test_org_mfa_for_a_member_without_a_factor_is_an_enrolment(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision(app_settings={"mfa": "off"})
    client_id = register_rp(settings, app, first_party=True)
    address, sub, _ = await member(client, app)
    secure = await make_org(services, app, "secure", members=[sub], mfa_required=True)
    verifier = secrets.token_urlsafe(48)
    page = await drive(
        browser,
        await authorize(browser, app, client_id, verifier, organization_id=secure),
        email=address,
    )
    assert page.status_code == 200, page.text
    assert "Set up two-step verification" in page.text
    # No code reached the client, and the org's rule holds for this member from now on.
    assert "location" not in page.headers
    seed = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page.text)
    assert seed is not None
