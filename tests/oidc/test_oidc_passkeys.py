"""Passkeys on the hosted pages without a browser (issue 12): the login page's
passkey sign-in and the account page's registration, driven with a software
authenticator (real signatures) and a cookie-keeping client. The same pages in
Chromium: tests/test_webauthn_browser.py."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from html import unescape
from typing import Any

import httpx
from starlette.applications import Starlette

from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings
from softauthn import SoftAuthenticator

from ._support import PASSWORD, authorize_params, form, pkce_pair, register
from .conftest import Provider

MakeProvider = Callable[..., Awaitable[Provider]]
ORIGIN = "http://testserver"


def passkey_box(html: str) -> dict[str, str]:
    """The data attributes of the page's passkey element (templates/_passkey_signin.html)."""
    match = re.search(r"<div class=\"passkey\" hidden data-passkey-signin(.*?)>", html, re.S)
    assert match, html
    return {k: unescape(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', match.group(1))}


async def login_page(browser: httpx.AsyncClient, p: Provider, **extra: str) -> dict[str, str]:
    _, challenge = pkce_pair()
    page = await browser.get(
        f"/apps/{p.app_id}/oauth/authorize",
        params=authorize_params(p.client_id, challenge, **extra),
    )
    assert page.status_code == 200, page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    return passkey_box(page.text)


async def passkey_sign_in(
    browser: httpx.AsyncClient, box: dict[str, str], key: SoftAuthenticator, **override: str
) -> httpx.Response:
    options = await browser.post(
        box["options-url"],
        data={box["csrf-field"]: box["csrf"], "flow": box["flow"], "flow_token": ""},
    )
    assert options.status_code == 200, options.text
    body = options.json()
    assertion = key.get(body["publicKey"], ORIGIN)
    form = {
        box["csrf-field"]: box["csrf"],
        "flow": box["flow"],
        "flow_token": body["flow_token"],
        "assertion": json.dumps(assertion),
        **override,
    }
    return await browser.post(box["action"], data=form)


async def registered(client: httpx.AsyncClient, p: Provider) -> SoftAuthenticator:
    """A passkey for the provider's user, registered through the JSON API."""
    login = await client.post(
        f"/apps/{p.app_id}/v1/login",
        json={"email": p.email, "password": "violet-Harbor-lantern-42"},
    )
    token = login.json()["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    options = await client.post(
        f"/apps/{p.app_id}/v1/mfa/webauthn/registration/options", json={}, headers=headers
    )
    key = SoftAuthenticator()
    credential = key.create(options.json()["publicKey"], ORIGIN)
    stored = await client.post(
        f"/apps/{p.app_id}/v1/mfa/webauthn/registration",
        json={"credential": credential},
        headers=headers,
    )
    assert stored.status_code == 201, stored.text
    return key


async def test_login_page_signs_in_with_a_passkey(
    make_provider: MakeProvider, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    p = await make_provider()
    key = await registered(client, p)
    box = await login_page(browser, p)
    response = await passkey_sign_in(browser, box, key)
    assert response.status_code == 303, response.text
    assert "/oauth/authorize/continue?" in response.headers["location"]
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith(f"oneauth_session_{p.app_id}=obs_") for c in cookies)
    # The flow cookie goes; the consent page follows for this third-party client.
    assert any(c.startswith(f"oneauth_mfa_{p.app_id}=") and "Max-Age=0" in c for c in cookies)
    consent = await browser.get(response.headers["location"])
    assert consent.status_code == 200
    assert "Allow access" in consent.text


async def test_passkey_of_another_app_is_refused_on_the_login_page(
    make_provider: MakeProvider, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    a = await make_provider(email="same@example.com")
    b = await make_provider(email="same@example.com")
    key = await registered(client, a)
    response = await passkey_sign_in(browser, await login_page(browser, b), key)
    assert response.status_code == 401
    assert "That passkey was not accepted here" in response.text
    assert not any(
        c.startswith(f"oneauth_session_{b.app_id}=")
        for c in response.headers.get_list("set-cookie")
    )


async def test_the_flow_is_bound_to_the_browser_that_began_it(
    make_provider: MakeProvider, service: Any, client: httpx.AsyncClient
) -> None:
    """A flow token (and a valid assertion for it) copied into another browser is refused:
    the flow is bound to a nonce in the first browser's cookie."""
    p = await make_provider()
    key = await registered(client, p)
    transport = httpx.ASGITransport(app=service)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as first,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as other,
    ):
        box = await login_page(first, p)
        options = await first.post(
            box["options-url"],
            data={box["csrf-field"]: box["csrf"], "flow": box["flow"], "flow_token": ""},
        )
        body = options.json()
        assertion = key.get(body["publicKey"], ORIGIN)
        theirs = await login_page(other, p)
        response = await other.post(
            theirs["action"],
            data={
                theirs["csrf-field"]: theirs["csrf"],
                "flow": theirs["flow"],
                "flow_token": body["flow_token"],
                "assertion": json.dumps(assertion),
            },
        )
        assert response.status_code in (400, 401)
        assert "oneauth_session_" not in response.headers.get("set-cookie", "")


async def test_passkey_forms_need_the_csrf_token(
    make_provider: MakeProvider, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    p = await make_provider()
    key = await registered(client, p)
    box = await login_page(browser, p)
    options = await browser.post(box["options-url"], data={"flow_token": ""})
    assert options.status_code == 400
    assert options.json()["code"] == "flow_expired"
    response = await passkey_sign_in(browser, box, key, **{box["csrf-field"]: "forged"})
    assert response.status_code == 403


async def test_malformed_passkey_sign_in_is_a_page_not_a_5xx(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider()
    box = await login_page(browser, p)
    options = await browser.post(
        box["options-url"],
        data={box["csrf-field"]: box["csrf"], "flow": box["flow"], "flow_token": ""},
    )
    for assertion in ("", "{", "[]", '{"id": 1}', "x" * 20_000):
        response = await browser.post(
            box["action"],
            data={
                box["csrf-field"]: box["csrf"],
                "flow": box["flow"],
                "flow_token": options.json()["flow_token"],
                "assertion": assertion,
            },
        )
        assert response.status_code in (400, 401), response.text


async def second_browser_signed_in(
    service: Starlette, p: Provider
) -> tuple[dict[str, str], httpx.AsyncClient]:
    """Another cookie jar, signed in on the hosted page with the password."""
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url=ORIGIN)
    box = await login_page(other, p)
    page = await other.post(
        f"/apps/{p.app_id}/login",
        data={
            box["csrf-field"]: box["csrf"],
            "flow": box["flow"],
            "email": p.email,
            "password": "violet-Harbor-lantern-42",
        },
    )
    assert page.status_code == 303, page.text
    return box, other


async def test_account_page_registration_needs_csrf_session_and_a_recent_sign_in(
    make_provider: MakeProvider,
    browser: httpx.AsyncClient,
    services: Services,
    service: Starlette,
) -> None:
    p = await make_provider()
    # A second browser signs in before the user has any factor.
    other_box, other = await second_browser_signed_in(service, p)
    box = await login_page(browser, p)
    url = f"/apps/{p.app_id}/account/passkeys/options"
    # No session yet.
    assert (await browser.post(url, headers={"x-csrf-token": box["csrf"]})).status_code == 401
    # Sign in on the hosted page (password), then register.
    page = await browser.post(
        f"/apps/{p.app_id}/login",
        data={
            box["csrf-field"]: box["csrf"],
            "flow": box["flow"],
            "email": p.email,
            "password": "violet-Harbor-lantern-42",
        },
    )
    assert page.status_code == 303, page.text
    assert (await browser.post(url)).status_code == 403  # no CSRF header
    options = await browser.post(url, headers={"x-csrf-token": box["csrf"]})
    assert options.status_code == 200, options.text
    key = SoftAuthenticator()
    credential = key.create(options.json()["publicKey"], ORIGIN)
    stored = await browser.post(
        f"/apps/{p.app_id}/account/passkeys",
        json={"credential": credential, "name": "Phone"},
        headers={"x-csrf-token": box["csrf"]},
    )
    assert stored.status_code == 201, stored.text
    assert stored.json()["name"] == "Phone"
    assert len(stored.json()["recovery_codes"]) == 10
    # Registering proved the new key for this (recent, password) browser sign-in: it
    # now counts as two factors, so the page may add another at once (M9).
    another = await browser.post(url, headers={"x-csrf-token": box["csrf"]})
    assert another.status_code == 200, another.text
    # Only this browser's session: another browser signed in with the password before
    # the passkey existed may not add one (it needs a sign-in with the second factor).
    try:
        refused = await other.post(url, headers={"x-csrf-token": other_box["csrf"]})
    finally:
        await other.aclose()
    assert refused.status_code == 403
    assert "second factor" in refused.json()["detail"]
    # With a passkey sign-in it may, but not once that sign-in is old.
    response = await passkey_sign_in(browser, await login_page(browser, p, prompt="login"), key)
    assert response.status_code == 303, response.text
    assert (await browser.post(url, headers={"x-csrf-token": box["csrf"]})).status_code == 200
    async with services.router.app(p.app_id) as conn:
        await conn.execute("UPDATE browser_sessions SET auth_time = auth_time - interval '1 hour'")
    late = await browser.post(url, headers={"x-csrf-token": box["csrf"]})
    assert late.status_code == 403
    assert late.json()["code"] == "insufficient_user_authentication"


async def test_enrolment_page_sets_up_a_passkey_where_passkeys_are_the_only_factor(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    """mfa=required, passkeys only, a user with none: after the password the hosted
    enrolment page offers the passkey; registering it completes the sign-in."""
    app = provision(app_settings={"mfa": "required", "mfa_factors": ["webauthn", "recovery_code"]})
    client_id, _ = register(settings, app)
    email = "only-passkeys@example.com"
    made = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
    )
    assert made.status_code in (201, 403), made.text
    _, challenge = pkce_pair()
    page = await browser.get(
        f"/apps/{app.app_id}/oauth/authorize", params=authorize_params(client_id, challenge)
    )
    login = form(page.text)
    enrol = await browser.post(
        login.action, data={**login.fields, "email": email, "password": PASSWORD}
    )
    assert enrol.status_code == 200, enrol.text
    assert "<svg" not in enrol.text  # no TOTP here
    assert "script-src 'self'" in enrol.headers["content-security-policy"]
    match = re.search(r"<div class=\"passkey\" hidden data-passkey-enrol(.*?)>", enrol.text, re.S)
    assert match, enrol.text
    box = {k: unescape(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', match.group(1))}
    options = await browser.post(
        box["options-url"], data={box["csrf-field"]: box["csrf"], "flow_token": box["flow-token"]}
    )
    assert options.status_code == 200, options.text
    key = SoftAuthenticator()
    credential = key.create(options.json()["publicKey"], ORIGIN)
    done = await browser.post(
        box["action"],
        data={
            box["csrf-field"]: box["csrf"],
            "flow_token": box["flow-token"],
            "credential": json.dumps(credential),
        },
    )
    assert done.status_code == 200, done.text
    assert done.text.count("<li><code>") == 10  # the recovery codes, once
    assert any(
        c.startswith(f"oneauth_session_{app.app_id}=obs_")
        for c in done.headers.get_list("set-cookie")
    )
    # The enrolment flow is spent.
    again = await browser.post(
        box["options-url"], data={box["csrf-field"]: box["csrf"], "flow_token": box["flow-token"]}
    )
    assert again.status_code == 400
