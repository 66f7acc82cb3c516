"""Issue 12: acr_values=urn:oneauth:acr:mfa on the authorization request steps up a
one-factor browser sign-in through the hosted second-factor (or enrolment) page; the
ID token then carries acr mfa. prompt=none answers interaction_required before, a code
after."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable

import httpx
import pyotp

from oidc._support import (
    authorize_params,
    challenge_of,
    exchange,
    forms,
    jwt_claims,
    query,
    register,
)
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from .conftest import code_for, enrol_totp, forget_last_step, signup, unique_email
from .test_hosted import _form_with, _login_page, _password, _to_code

MFA = "urn:oneauth:acr:mfa"
_SECRET = re.compile(r'<code class="secret">([A-Z2-7 ]+)</code>')


async def _authorize(
    browser: httpx.AsyncClient, app: AppRecord, client_id: str, verifier: str, **extra: str
) -> httpx.Response:
    params = authorize_params(client_id, challenge_of(verifier), **extra)
    return await browser.get(f"/apps/{app.app_id}/oauth/authorize", params=params)


async def _tokens(
    browser: httpx.AsyncClient,
    app: AppRecord,
    client_id: str,
    result: dict[str, str],
    verifier: str,
) -> dict[str, object]:
    tokens = await exchange(browser, app.app_id, client_id, result["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    _, claims = jwt_claims(tokens.json()["id_token"])
    return claims


async def test_step_up_of_a_password_session_with_totp(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    # mfa=off: the app asks nobody for a second factor, but this client does (acr_values).
    app = provision(app_settings={"mfa": "off"})
    client_id, _ = register(settings, app)
    email = unique_email()
    secret, _, _ = await enrol_totp(client, app, (await signup(client, app, email))["access_token"])
    await forget_last_step(services, app)
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        verifier = secrets.token_urlsafe(48)
        first = await _password(
            browser, await _login_page(browser, app, client_id, verifier), email
        )
        consent = await browser.get(first.headers["location"])
        allow = _form_with(consent.text, "flow")
        result = await _to_code(
            browser, await browser.post(allow.action, data={**allow.fields, "decision": "allow"})
        )
        claims = await _tokens(browser, app, client_id, result, verifier)
        assert claims["acr"] == "urn:oneauth:acr:sfa"

        # The client wants MFA: silently impossible, so prompt=none says interaction_required.
        verifier = secrets.token_urlsafe(48)
        silent = await _authorize(browser, app, client_id, verifier, prompt="none", acr_values=MFA)
        assert query(silent.headers["location"])["error"] == "interaction_required"
        # Interactively: the second-factor page for the signed-in user (no password again).
        page = await _authorize(browser, app, client_id, verifier, acr_values=MFA)
        assert page.status_code == 200, page.text
        assert "Two-step verification" in page.text
        assert not [f for f in forms(page.text) if "password" in f.fields]
        totp_form = _form_with(page.text, "factor", "totp")
        done = await browser.post(
            totp_form.action, data={**totp_form.fields, "code": code_for(secret)}
        )
        result = await _to_code(browser, done)
        claims = await _tokens(browser, app, client_id, result, verifier)
        assert claims["acr"] == MFA
        assert "mfa" in claims["amr"]  # type: ignore[operator]

        # The browser's sign-in now has both factors: prompt=none gets its code.
        verifier = secrets.token_urlsafe(48)
        again = await _authorize(browser, app, client_id, verifier, prompt="none", acr_values=MFA)
        assert "code" in query(again.headers["location"]), again.headers["location"]


async def test_step_up_of_a_user_without_a_factor_enrols_one(
    client: httpx.AsyncClient, settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()  # mfa=optional: a user with no factor signs in with a password
    client_id, _ = register(settings, app, first_party=True)
    email = unique_email()
    await signup(client, app, email)
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        verifier = secrets.token_urlsafe(48)
        result = await _to_code(
            browser,
            await _password(browser, await _login_page(browser, app, client_id, verifier), email),
        )
        assert (await _tokens(browser, app, client_id, result, verifier))[
            "acr"
        ] == "urn:oneauth:acr:sfa"
        verifier = secrets.token_urlsafe(48)
        page = await _authorize(browser, app, client_id, verifier, acr_values=MFA)
        assert page.status_code == 200, page.text
        assert "Set up two-step verification" in page.text
        secret = _SECRET.search(page.text)
        assert secret is not None
        code = pyotp.TOTP(html.unescape(secret.group(1)).replace(" ", "")).now()
        enrol = _form_with(page.text, "factor_id")
        codes = await browser.post(enrol.action, data={**enrol.fields, "code": code})
        assert codes.status_code == 200, codes.text
        assert "recovery codes" in codes.text
        next_url = re.search(r'href="([^"]*/oauth/authorize/continue[^"]*)"', codes.text)
        assert next_url is not None
        result = await _to_code(browser, await browser.get(html.unescape(next_url.group(1))))
        claims = await _tokens(browser, app, client_id, result, verifier)
        assert claims["acr"] == MFA


async def test_step_up_at_a_leaves_b_alone(
    client: httpx.AsyncClient, settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    a, b = provision(), provision()
    client_a, _ = register(settings, a, first_party=True)
    client_b, _ = register(settings, b, first_party=True)
    email = unique_email()
    await signup(client, a, email)
    await signup(client, b, email)
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        verifier = secrets.token_urlsafe(48)
        await _to_code(
            browser,
            await _password(browser, await _login_page(browser, a, client_a, verifier), email),
        )
        # Signed in at A only: B's step-up request is a plain login_required.
        silent_b = await _authorize(browser, b, client_b, verifier, prompt="none", acr_values=MFA)
        assert query(silent_b.headers["location"])["error"] == "login_required"
