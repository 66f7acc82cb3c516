"""Issue 12: adding factors on the hosted Security page (authenticator app, recovery
codes; passkeys in tests/test_webauthn_browser.py), through the same services as
the JSON API, with the same rule: a recent sign-in, with the second factor once
the user has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pyotp

from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._support import PASSWORD, forms, register
from ._support import signup as signup_user
from .conftest import Provider
from .test_oidc_account import action_form, open_account

CODE = re.compile(r"<li><code>([^<]+)</code></li>")


def secret_of(page: httpx.Response) -> str:
    found = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page.text)
    assert found, page.text
    return found.group(1).replace(" ", "")


async def api_recovery_login(
    client: httpx.AsyncClient, provider: Provider, code: str
) -> httpx.Response:
    first = await client.post(
        f"/apps/{provider.app_id}/v1/login", json={"email": provider.email, "password": PASSWORD}
    )
    assert first.status_code == 403, first.text
    assert first.json()["code"] == "mfa_required"
    return await client.post(
        f"/apps/{provider.app_id}/v1/login/mfa",
        json={"flow_token": first.json()["flow_token"], "factor": "recovery_code", "code": code},
    )


async def test_add_an_authenticator_app_then_new_recovery_codes_on_the_page(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()  # mfa=optional: once enrolled, the factor is asked for
    client_id, _ = register(settings, app)
    email = "page-totp@example.com"
    provider = Provider(app, client_id, email, await signup_user(client, app.app_id, email))
    page = await open_account(browser, provider)
    assert "No second factor is set up." in page.text
    assert "/account/recovery-codes" not in page.text  # nothing to back up yet

    action, data = action_form(page, "/account/totp")
    setup = await browser.post(action, data={**data, "name": "Phone"})
    assert setup.status_code == 200, setup.text
    assert "<svg" in setup.text  # the QR code
    assert setup.headers["cache-control"] == "no-store"
    secret = secret_of(setup)
    action, data = action_form(setup, "/account/totp/confirm")

    # A wrong code: the same setup again (the user already scanned it), nothing on.
    wrong = await browser.post(action, data={**data, "code": "000000"})
    assert wrong.status_code == 400
    assert secret_of(wrong) == secret
    assert "not right" in wrong.text

    done = await browser.post(action, data={**data, "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200, done.text
    first_set = CODE.findall(done.text)
    assert len(first_set) == 10
    async with services.router.app(app.app_id) as conn:
        kinds = await conn.fetch(
            "SELECT kind, name, confirmed_at IS NOT NULL AS on FROM mfa_factors ORDER BY kind"
        )
    assert [(r["kind"], r["name"], r["on"]) for r in kinds] == [
        ("recovery_codes", "Recovery codes", True),
        ("totp", "Phone", True),
    ]

    # The code proved the new factor for this browser's (recent, password) sign-in:
    # it now counts as a two-factor sign-in, and the page opens without asking again.
    async with services.router.app(app.app_id) as conn:
        amr = await conn.fetchval("SELECT amr FROM browser_sessions WHERE revoked_at IS NULL")
    assert sorted(amr) == ["mfa", "otp", "pwd"]
    async with services.router.app(app.app_id) as conn:
        families = await conn.fetch("SELECT amr FROM sessions")
    assert families  # the sign-up's token session: it proved one factor, and keeps saying so
    assert all("mfa" not in r["amr"] for r in families)
    page = await browser.get(f"/apps/{app.app_id}/account")
    assert page.status_code == 200, page.headers
    assert "Phone" in page.text
    assert "Recovery codes (10 left)" in page.text

    action, data = action_form(page, "/account/recovery-codes")
    fresh = await browser.post(action, data=data)
    assert fresh.status_code == 200, fresh.text
    assert "Your old codes no longer work" in fresh.text
    second_set = CODE.findall(fresh.text)
    assert len(second_set) == 10
    assert not set(second_set) & set(first_set)

    # Through the API: an old code is refused, a new one signs in.
    old = await api_recovery_login(client, provider, first_set[1])
    assert old.status_code == 400
    assert old.json()["code"] == "invalid_code"
    new = await api_recovery_login(client, provider, second_set[0])
    assert new.status_code == 200, new.text
    async with services.router.app(app.app_id) as conn:
        events = await conn.fetch(
            "SELECT event FROM audit_log WHERE event LIKE 'mfa.%' ORDER BY id"
        )
    names = [r["event"] for r in events]
    assert "mfa.totp_confirmed" in names
    assert "mfa.recovery_codes_regenerated" in names


async def test_adding_a_factor_on_the_page_needs_a_recent_sign_in(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision(app_settings={"mfa": "off"})
    client_id, _ = register(settings, app)
    email = "stale-add@example.com"
    provider = Provider(app, client_id, email, await signup_user(client, app.app_id, email))
    page = await open_account(browser, provider)
    async with services.router.app(app.app_id) as conn:
        await conn.execute(
            "UPDATE browser_sessions SET auth_time = now() - interval '1 hour'"
            " WHERE revoked_at IS NULL"
        )
    csrf = forms(page.text)[0].fields["csrf"]
    # The TOTP button, and the passkey button's way back (/account/reauth), both send
    # the browser to sign in again before anything changes.
    for path in ("/account/totp", "/account/recovery-codes", "/account/reauth"):
        stale = await browser.post(f"/apps/{app.app_id}{path}", data={"csrf": csrf})
        assert stale.status_code == 303, (path, stale.text)
        assert "/oauth/authorize/continue" in stale.headers["location"], path
    async with services.router.app(app.app_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM mfa_factors") == 0
    # Without the CSRF token nothing starts.
    forged = await browser.post(f"/apps/{app.app_id}/account/totp", data={})
    assert forged.status_code in (400, 403)


async def test_a_setup_of_app_a_cannot_be_confirmed_at_b(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    a = provision(app_settings={"mfa": "off"})
    b = provision(app_settings={"mfa": "off"})
    email = "both-totp@example.com"
    pa = Provider(a, register(settings, a)[0], email, await signup_user(client, a.app_id, email))
    pb = Provider(b, register(settings, b)[0], email, await signup_user(client, b.app_id, email))
    page_a = await open_account(browser, pa)
    action, data = action_form(page_a, "/account/totp")
    setup = await browser.post(action, data=data)
    secret = secret_of(setup)
    _, confirm = action_form(setup, "/account/totp/confirm")
    page_b = await open_account(browser, pb)
    csrf_b = forms(page_b.text)[0].fields["csrf"]
    at_b = await browser.post(
        f"/apps/{b.app_id}/account/totp/confirm",
        data={"csrf": csrf_b, "factor_id": confirm["factor_id"], "code": pyotp.TOTP(secret).now()},
    )
    assert at_b.status_code == 303
    assert at_b.headers["location"].endswith("done=totp_expired")
    for app in (a, b):
        async with services.router.app(app.app_id) as conn:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM mfa_factors WHERE confirmed_at IS NOT NULL"
                )
                == 0
            )
