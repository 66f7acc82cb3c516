"""The hosted pages over the flow engine (issue 12), end to end with httpx: login ->
second-factor page -> code -> the client's code -> tokens; enrolment when required;
prompt=none with a browser session from before the factor existed."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

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
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services
from oneauth.settings import Settings

from .conftest import PASSWORD, code_for, enrol_totp, forget_last_step, post, signup, unique_email

_SECRET = re.compile(r'<code class="secret">([A-Z2-7 ]+)</code>')


def _form_with(html: str, field: str, value: str | None = None) -> Any:
    for f in forms(html):
        if field in f.fields and (value is None or f.fields[field] == value):
            return f
    raise AssertionError(f"no form with {field}={value} in:\n{html}")


async def _login_page(
    browser: httpx.AsyncClient, app: AppRecord, client_id: str, verifier: str, **extra: str
) -> httpx.Response:
    params = authorize_params(client_id, challenge_of(verifier), **extra)
    page = await browser.get(f"/apps/{app.app_id}/oauth/authorize", params=params)
    assert page.status_code == 200, page.text
    return page


async def _password(browser: httpx.AsyncClient, page: httpx.Response, email: str) -> httpx.Response:
    login = _form_with(page.text, "password")
    data = {**login.fields, "email": email, "password": PASSWORD}
    return await browser.post(login.action, data=data)


async def _to_code(browser: httpx.AsyncClient, response: httpx.Response) -> dict[str, str]:
    """Follow continue redirects to the client's redirect URI; its query."""
    for _ in range(4):
        assert response.status_code in (302, 303), response.text
        location = response.headers["location"]
        if "/oauth/authorize/continue" not in location:
            return query(location)
        response = await browser.get(location)
    raise AssertionError("no redirect to the client")


def _session_cookie(response: httpx.Response, app: AppRecord) -> bool:
    return f"oneauth_session_{app.app_id}=" in response.headers.get("set-cookie", "")


async def test_login_then_totp_page_then_code_and_mfa_tokens(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    client_id, _ = register(settings, app, first_party=True)
    email = unique_email()
    secret, _, codes = await enrol_totp(
        client, app, (await signup(client, app, email))["access_token"]
    )
    await forget_last_step(services, app)
    transport = client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        verifier = secrets.token_urlsafe(48)
        page = await _login_page(browser, app, client_id, verifier)
        mfa_page = await _password(browser, page, email)
        assert mfa_page.status_code == 200, mfa_page.text
        assert "Two-step verification" in mfa_page.text
        assert not _session_cookie(mfa_page, app)  # no session before the second factor
        assert f"oneauth_mfa_{app.app_id}=" in mfa_page.headers["set-cookie"]
        totp_form = _form_with(mfa_page.text, "factor", "totp")
        assert _form_with(mfa_page.text, "factor", "recovery_code")
        # A wrong code: the page again, with an error, and the flow lives on.
        wrong = f"{(int(code_for(secret)) + 1) % 1_000_000:06d}"
        again = await browser.post(totp_form.action, data={**totp_form.fields, "code": wrong})
        assert again.status_code == 400
        assert "not right" in again.text
        totp_form = _form_with(again.text, "factor", "totp")
        # The flow token alone, in another browser (no nonce cookie), is nothing.
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            own = _form_with((await _login_page(other, app, client_id, verifier)).text, "password")
            stolen = await other.post(
                totp_form.action,
                data={**totp_form.fields, "csrf": own.fields["csrf"], "code": code_for(secret)},
            )
            assert stolen.status_code == 400
            assert "flow_expired" in stolen.text
        # Nor at the first-party API (bound to this browser, not the API caller).
        api = await post(
            client,
            app,
            "/v1/login/mfa",
            {
                "flow_token": totp_form.fields["flow_token"],
                "factor": "totp",
                "code": code_for(secret),
            },
        )
        assert api.json()["code"] == "flow_expired"
        done = await browser.post(
            totp_form.action, data={**totp_form.fields, "code": code_for(secret)}
        )
        assert done.status_code == 303, done.text
        assert _session_cookie(done, app)
        result = await _to_code(browser, done)
        tokens = await exchange(browser, app.app_id, client_id, result["code"], verifier)
        assert tokens.status_code == 200, tokens.text
        _, id_claims = jwt_claims(tokens.json()["id_token"])
        _, access_claims = jwt_claims(tokens.json()["access_token"])
        for claims in (id_claims, access_claims):
            assert claims["amr"] == ["pwd", "otp", "mfa"]
            assert claims["acr"] == "urn:oneauth:acr:mfa"
        # The session has MFA: a silent authorize now gives a code at once.
        silent = await browser.get(
            f"/apps/{app.app_id}/oauth/authorize",
            params=authorize_params(client_id, challenge_of(verifier), prompt="none"),
        )
        assert "code" in query(silent.headers["location"])
    assert codes


async def test_recovery_code_on_the_hosted_page(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    client_id, _ = register(settings, app, first_party=True)
    email = unique_email()
    _, _, codes = await enrol_totp(client, app, (await signup(client, app, email))["access_token"])
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        verifier = secrets.token_urlsafe(48)
        mfa_page = await _password(
            browser, await _login_page(browser, app, client_id, verifier), email
        )
        rc = _form_with(mfa_page.text, "factor", "recovery_code")
        done = await browser.post(rc.action, data={**rc.fields, "code": codes[3]})
        assert done.status_code == 303, done.text
        assert "code" in await _to_code(browser, done)


async def test_browser_session_from_before_the_factor_is_not_enough(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    """prompt=none with a session made before the user enrolled: login_required, not a
    code; without prompt=none the login page (password, then the factor)."""
    app = provision()
    client_id, _ = register(settings, app, first_party=True)
    email = unique_email()
    token = (await signup(client, app, email))["access_token"]
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        verifier = secrets.token_urlsafe(48)
        page = await _login_page(browser, app, client_id, verifier)
        first = await _password(browser, page, email)
        assert "code" in await _to_code(browser, first)  # no factor yet: one step
        secret, _, _ = await enrol_totp(client, app, token)
        await forget_last_step(services, app)
        url = f"/apps/{app.app_id}/oauth/authorize"
        none = await browser.get(
            url, params=authorize_params(client_id, challenge_of(verifier), prompt="none")
        )
        assert query(none.headers["location"])["error"] == "login_required"
        again = await browser.get(url, params=authorize_params(client_id, challenge_of(verifier)))
        assert again.status_code == 200
        assert 'name="password"' in again.text
        mfa_page = await _password(browser, again, email)
        totp_form = _form_with(mfa_page.text, "factor", "totp")
        done = await browser.post(
            totp_form.action, data={**totp_form.fields, "code": code_for(secret)}
        )
        assert "code" in await _to_code(browser, done)


async def test_required_policy_enrols_on_the_hosted_page(
    client: httpx.AsyncClient,
    settings: Settings,
    provision: Callable[..., AppRecord],
    configure: Callable[..., Any],
) -> None:
    app = provision()
    client_id, _ = register(settings, app, first_party=True)
    email = unique_email()
    await signup(client, app, email)
    await configure(app, mfa="required")
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        verifier = secrets.token_urlsafe(48)
        page = await _login_page(browser, app, client_id, verifier)
        enrol = await _password(browser, page, email)
        assert enrol.status_code == 200, enrol.text
        assert "<svg" in enrol.text
        assert not _session_cookie(enrol, app)
        found = _SECRET.search(enrol.text)
        assert found, enrol.text
        secret = found.group(1).replace(" ", "")
        enrol_form = _form_with(enrol.text, "factor_id")
        wrong = f"{(int(pyotp.TOTP(secret).now()) + 1) % 1_000_000:06d}"
        retry = await browser.post(enrol_form.action, data={**enrol_form.fields, "code": wrong})
        assert retry.status_code == 400
        assert _SECRET.search(retry.text).group(1).replace(" ", "") == secret  # type: ignore[union-attr]
        enrol_form = _form_with(retry.text, "factor_id")
        done = await browser.post(
            enrol_form.action, data={**enrol_form.fields, "code": pyotp.TOTP(secret).now()}
        )
        assert done.status_code == 200, done.text
        assert _session_cookie(done, app)
        shown = re.findall(r"<li><code>([0-9a-z-]{14})</code></li>", done.text)
        assert len(shown) == 10
        next_url = re.search(r'href="([^"]+/oauth/authorize/continue[^"]+)"', done.text)
        assert next_url
        cont = await browser.get(next_url.group(1).replace("&amp;", "&"))
        result = await _to_code(browser, cont)
        tokens = await exchange(browser, app.app_id, client_id, result["code"], verifier)
        _, claims = jwt_claims(tokens.json()["id_token"])
        assert claims["amr"] == ["pwd", "otp", "mfa"]


async def test_second_factor_form_needs_csrf(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    r = await client.post(
        f"/apps/{app.app_id}/login/mfa", data={"flow_token": "ofl_x", "code": "123456"}
    )
    assert r.status_code == 403


async def test_hosted_passwordless_then_totp(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"passwordless": True})
    email = unique_email()
    secret, _, _ = await enrol_totp(client, app, (await signup(client, app, email))["access_token"])
    await forget_last_step(services, app)
    base = f"/apps/{app.app_id}"
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        page = await browser.get(f"{base}/signin/code")
        start = forms(page.text)[0]
        asked = await browser.post(start.action, data={**start.fields, "email": email})
        await deliver(app)
        code = re.search(r"^\s*(\d{6})\s*$", mailbox.to(email)[-1].text, re.MULTILINE)
        assert code
        enter = forms(asked.text)[0]
        mfa_page = await browser.post(enter.action, data={**enter.fields, "code": code.group(1)})
        assert mfa_page.status_code == 200, mfa_page.text
        assert not _session_cookie(mfa_page, app)
        totp_form = _form_with(mfa_page.text, "factor", "totp")
        done = await browser.post(
            totp_form.action, data={**totp_form.fields, "code": code_for(secret)}
        )
        assert done.status_code == 200, done.text
        assert "Signed in" in done.text
        assert _session_cookie(done, app)


async def test_consent_form_of_a_pre_mfa_session_issues_no_code(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    """The consent page was shown to a one-factor session; the user then enrolled a
    factor (say, in another tab). Allowing consent now must not issue a code."""
    app = provision()
    client_id, _ = register(settings, app)  # a third-party client: consent is asked
    email = unique_email()
    token = (await signup(client, app, email))["access_token"]
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        verifier = secrets.token_urlsafe(48)
        consent_page = await _password(
            browser, await _login_page(browser, app, client_id, verifier), email
        )
        for _ in range(2):
            if consent_page.status_code in (302, 303):
                consent_page = await browser.get(consent_page.headers["location"])
        consent = _form_with(consent_page.text, "flow")
        await enrol_totp(client, app, token)
        r = await browser.post(consent.action, data={**consent.fields, "decision": "allow"})
        assert r.status_code == 303
        assert "/oauth/authorize/continue" in r.headers["location"]
        assert "code=" not in r.headers["location"]
        again = await browser.get(r.headers["location"])
        assert 'name="password"' in again.text  # a new sign-in, with the factor
    async with services.router.enter(app) as conn:
        assert await conn.fetchval("SELECT count(*) FROM authorization_codes") == 0


async def test_discovery_lists_the_acr_values(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    doc = (await client.get(f"/apps/{app.app_id}/.well-known/openid-configuration")).json()
    assert doc["acr_values_supported"] == ["urn:oneauth:acr:sfa", "urn:oneauth:acr:mfa"]
    assert "acr" in doc["claims_supported"]


async def test_enrolment_page_without_totp_shows_no_seed(
    client: httpx.AsyncClient,
    settings: Settings,
    provision: Callable[..., AppRecord],
    configure: Callable[..., Any],
) -> None:
    """An app that offers passkeys only: the enrolment page creates no TOTP seed
    (its passkey part is the WebAuthn page's) and issues no session."""
    app = provision()
    client_id, _ = register(settings, app, first_party=True)
    email = unique_email()
    await signup(client, app, email)
    await configure(app, mfa="required", mfa_factors=["webauthn", "recovery_code"])
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        page = await _login_page(browser, app, client_id, secrets.token_urlsafe(48))
        enrol = await _password(browser, page, email)
        assert enrol.status_code == 200, enrol.text
        assert "<svg" not in enrol.text
        assert not _session_cookie(enrol, app)
