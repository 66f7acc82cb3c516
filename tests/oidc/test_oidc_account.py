"""Issue 12: the hosted account "Security" page and /v1/sessions (one service for both).

Signed in with a browser session, the user sees and manages their sign-ins and
consents; every change is a CSRF-checked POST; nothing of another app appears or
can be touched.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pyotp

from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._support import PASSWORD, exchange, form, forms, register, sign_in
from ._support import signup as signup_user
from .conftest import Provider

MakeProvider = Callable[..., Awaitable[Provider]]


async def open_account(
    browser: httpx.AsyncClient, provider: Provider, *, password: str = PASSWORD
) -> httpx.Response:
    """GET /account, signing in through the hosted login page when asked to."""
    response = await browser.get(f"/apps/{provider.app_id}/account")
    for _ in range(6):
        if response.status_code in (302, 303):
            response = await browser.get(response.headers["location"])
            continue
        assert response.status_code == 200, response.text
        found = forms(response.text)
        login = [f for f in found if "password" in f.fields]
        if not login:
            return response
        data = {**login[0].fields, "email": provider.email, "password": password}
        response = await browser.post(login[0].action, data=data)
    raise AssertionError("the account page did not open")


def action_form(page: httpx.Response, fragment: str) -> tuple[str, dict[str, str]]:
    matches = [f for f in forms(page.text) if fragment in f.action]
    assert len(matches) == 1, [f.action for f in forms(page.text)]
    return matches[0].action, dict(matches[0].fields)


async def api_token(client: httpx.AsyncClient, provider: Provider) -> dict[str, str]:
    login = await client.post(
        f"/apps/{provider.app_id}/v1/login", json={"email": provider.email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    body: dict[str, str] = login.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_account_page_signs_in_then_lists_sessions_and_consents(
    browser: httpx.AsyncClient, make_provider: MakeProvider, settings: Settings
) -> None:
    provider = await make_provider("owner@example.com")
    # A consent to the third-party client, through the real authorization flow.
    flow = await sign_in(browser, provider.app_id, provider.client_id, provider.email)
    assert "code" in flow.result
    page = await open_account(browser, provider)
    assert "Security" in page.text
    assert "owner@example.com" in page.text
    assert "Relying Party" in page.text  # the consented client
    assert "(this browser)" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # The consent page's promise ("withdraw at any time") now points here.
    consent = await sign_in(
        browser, provider.app_id, provider.client_id, provider.email, consent=None, prompt="consent"
    )
    assert f'href="{settings.issuer_for(provider.app_id)}/account"' in consent.response.text


async def test_withdraw_consent_on_the_page_ends_the_clients_tokens(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    make_provider: MakeProvider,
) -> None:
    provider = await make_provider()
    flow = await sign_in(browser, provider.app_id, provider.client_id, provider.email)
    tokens = await exchange(browser, provider.app_id, provider.client_id, flow.code, flow.verifier)
    assert tokens.status_code == 200
    refresh = tokens.json()["refresh_token"]
    page = await open_account(browser, provider)
    action, data = action_form(page, f"/consents/{provider.client_id}/withdraw")
    done = await browser.post(action, data=data)
    assert done.status_code == 303
    assert done.headers["location"].endswith("/account?done=consent_withdrawn")
    after = await browser.get(done.headers["location"])
    assert "Access withdrawn" in after.text
    assert "Relying Party" not in after.text
    # The same state the JSON API sees, and the client's refresh token is dead.
    api = await api_token(client, provider)
    listed = await client.get(
        f"/apps/{provider.app_id}/v1/consents", headers=bearer(api["access_token"])
    )
    assert listed.json() == {"consents": []}
    refused = await client.post(
        f"/apps/{provider.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": provider.client_id,
        },
    )
    assert refused.status_code == 400
    # Posting again changes nothing and says so.
    again = await browser.post(action, data=data)
    assert again.headers["location"].endswith("done=nothing")


async def test_end_another_sign_in_and_sign_out_this_one(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    provider = await make_provider()
    api = await api_token(client, provider)  # a first-party API sign-in elsewhere
    page = await open_account(browser, provider)
    sessions = await client.get(
        f"/apps/{provider.app_id}/v1/sessions", headers=bearer(api["access_token"])
    )
    assert sessions.status_code == 200
    listed = sessions.json()["sessions"]
    assert {s["kind"] for s in listed} == {"browser", "app"}
    current_api = [s for s in listed if s["current"]]
    assert len(current_api) == 1
    assert current_api[0]["kind"] == "app"
    api_sid = current_api[0]["id"]
    action, data = action_form(page, f"/sessions/{api_sid}/end")
    ended = await browser.post(action, data=data)
    assert ended.headers["location"].endswith("done=session_ended")
    # That sign-in's tokens are dead.
    me = await client.get(f"/apps/{provider.app_id}/v1/me", headers=bearer(api["access_token"]))
    assert me.status_code == 401
    refreshed = await client.post(
        f"/apps/{provider.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": api["refresh_token"],
            "client_id": (await client.get(f"/apps/{provider.app_id}/v1/app")).json()[
                "default_client_id"
            ],
        },
    )
    assert refreshed.status_code == 400
    # "Sign out" of this browser: the cookie is cleared and the page asks for a sign-in.
    page = await browser.get(f"/apps/{provider.app_id}/account")
    (this_browser,) = [s["id"] for s in listed if s["kind"] == "browser"]
    assert this_browser in page.text
    assert api_sid not in page.text
    action, data = action_form(page, f"/sessions/{this_browser}/end")
    out = await browser.post(action, data=data)
    assert out.status_code == 303
    assert f"oneauth_session_{provider.app_id}=" in out.headers["set-cookie"]
    again = await browser.get(f"/apps/{provider.app_id}/account")
    assert again.status_code == 302
    assert "/oauth/authorize/continue" in again.headers["location"]


async def test_account_changes_need_the_csrf_token(
    browser: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    provider = await make_provider()
    await sign_in(browser, provider.app_id, provider.client_id, provider.email)
    page = await open_account(browser, provider)
    action, data = action_form(page, f"/consents/{provider.client_id}/withdraw")
    for forged in ({**data, "csrf": "x" * 64}, {"other": "field"}):
        refused = await browser.post(action, data=forged)
        assert refused.status_code == 403
        assert "<code>csrf</code>" in refused.text
    assert (await browser.post(action)).status_code in (400, 403)  # no body at all
    cross_site = await browser.post(action, data=data, headers={"origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert "Relying Party" in (await browser.get(f"/apps/{provider.app_id}/account")).text


async def test_account_of_a_shows_nothing_of_b_and_a_cookie_gives_nothing_at_b(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    make_provider: MakeProvider,
    settings: Settings,
) -> None:
    a = await make_provider("same@example.com", name="Client of A")
    b = await make_provider("same@example.com", name="Client of B")
    await sign_in(browser, b.app_id, b.client_id, b.email)  # consent + browser session at B
    api_b = await api_token(client, b)
    b_sessions = (
        await client.get(f"/apps/{b.app_id}/v1/sessions", headers=bearer(api_b["access_token"]))
    ).json()["sessions"]
    browser.cookies.clear()
    await sign_in(browser, a.app_id, a.client_id, a.email)
    page_a = await open_account(browser, a)
    assert "Client of A" in page_a.text
    assert "Client of B" not in page_a.text
    for s in b_sessions:
        assert s["id"] not in page_a.text
    # A's page cannot end B's sessions or withdraw B's consent, even by naming them.
    _, data = action_form(page_a, f"/consents/{a.client_id}/withdraw")
    for s in b_sessions:
        nothing = await browser.post(f"/apps/{a.app_id}/account/sessions/{s['id']}/end", data=data)
        assert nothing.headers["location"].endswith("done=nothing")
    nothing = await browser.post(
        f"/apps/{a.app_id}/account/consents/{b.client_id}/withdraw", data=data
    )
    assert nothing.headers["location"].endswith("done=nothing")
    assert (
        await client.get(f"/apps/{b.app_id}/v1/me", headers=bearer(api_b["access_token"]))
    ).status_code == 200
    # A's API cannot end B's session either.
    api_a = await api_token(client, a)
    for s in b_sessions:
        gone = await client.delete(
            f"/apps/{a.app_id}/v1/sessions/{s['id']}", headers=bearer(api_a["access_token"])
        )
        assert gone.status_code == 404
    # A's cookie, even presented under B's name, is no session at B: B asks for a sign-in.
    cookie = browser.cookies.get(f"oneauth_session_{a.app_id}")
    assert cookie
    browser.cookies.set(f"oneauth_session_{b.app_id}", cookie)
    at_b = await browser.get(f"/apps/{b.app_id}/account")
    assert at_b.status_code == 302
    assert "/oauth/authorize/continue" in at_b.headers["location"]
    # And B's consent is still there.
    consents_b = await client.get(
        f"/apps/{b.app_id}/v1/consents", headers=bearer(api_b["access_token"])
    )
    assert [c["client_id"] for c in consents_b.json()["consents"]] == [b.client_id]


async def test_sessions_api_bad_ids_are_404(
    client: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    provider = await make_provider()
    api = await api_token(client, provider)
    for sid in ("not-a-uuid", str(uuid.uuid4())):
        response = await client.delete(
            f"/apps/{provider.app_id}/v1/sessions/{sid}", headers=bearer(api["access_token"])
        )
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    unauth = await client.get(f"/apps/{provider.app_id}/v1/sessions")
    assert unauth.status_code == 401


async def test_two_withdrawals_at_once_end_the_consent_once(
    browser: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    provider = await make_provider()
    await sign_in(browser, provider.app_id, provider.client_id, provider.email)
    page = await open_account(browser, provider)
    action, data = action_form(page, f"/consents/{provider.client_id}/withdraw")
    first, second = await asyncio.gather(
        browser.post(action, data=data), browser.post(action, data=data)
    )
    outcomes = sorted(r.headers["location"].rsplit("=", 1)[1] for r in (first, second))
    assert outcomes == ["consent_withdrawn", "nothing"]


async def enrol_totp(client: httpx.AsyncClient, app_id: str, token: str) -> str:
    """A confirmed TOTP factor (and recovery codes) through the API; returns its id."""
    started = await client.post(f"/apps/{app_id}/v1/mfa/totp", json={}, headers=bearer(token))
    assert started.status_code == 201, started.text
    body = started.json()
    code = pyotp.TOTP(body["secret"]).now()
    done = await client.post(
        f"/apps/{app_id}/v1/mfa/totp/confirm",
        json={"factor_id": body["factor_id"], "code": code},
        headers=bearer(token),
    )
    assert done.status_code == 200, done.text
    factor_id: str = body["factor_id"]
    return factor_id


async def test_factors_listed_renamed_and_removed_with_a_recent_sign_in(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    # mfa=off: the factors exist, and changing them needs only a recent sign-in.
    app = provision(app_settings={"mfa": "off"})
    client_id, _ = register(settings, app)
    sub = await signup_user(client, app.app_id, "factors@example.com")
    provider = Provider(app, client_id, "factors@example.com", sub)
    tokens = await api_token(client, provider)
    factor_id = await enrol_totp(client, app.app_id, tokens["access_token"])
    page = await open_account(browser, provider)
    assert "Authenticator app" in page.text
    assert "Recovery codes (10 left)" in page.text
    assert "PASSKEYS SLOT" not in page.text  # a template comment, not output

    action, data = action_form(page, f"/factors/{factor_id}/rename")
    renamed = await browser.post(action, data={**data, "name": "Work phone"})
    assert renamed.headers["location"].endswith("done=factor_renamed")
    listed = await client.get(f"/apps/{app.app_id}/v1/mfa", headers=bearer(tokens["access_token"]))
    assert [f["name"] for f in listed.json()["factors"] if f["id"] == factor_id] == ["Work phone"]

    # A sign-in older than mfa_change_max_age (600 s) may not remove it: sign in again.
    async with services.router.app(app.app_id) as conn:
        await conn.execute(
            "UPDATE browser_sessions SET auth_time = now() - interval '1 hour'"
            " WHERE revoked_at IS NULL"
        )
    page = await browser.get(f"/apps/{app.app_id}/account")
    action, data = action_form(page, f"/factors/{factor_id}/remove")
    stale = await browser.post(action, data=data)
    assert stale.status_code == 303
    assert "/oauth/authorize/continue" in stale.headers["location"]
    login_page = await browser.get(stale.headers["location"])
    assert "password" in form(login_page.text).fields  # prompt=login: a new sign-in
    relogin = await browser.post(
        form(login_page.text).action,
        data={**form(login_page.text).fields, "email": provider.email, "password": PASSWORD},
    )
    back = await browser.get(relogin.headers["location"])
    assert back.headers["location"].endswith(f"/apps/{app.app_id}/account")
    page = await browser.get(back.headers["location"])
    action, data = action_form(page, f"/factors/{factor_id}/remove")
    removed = await browser.post(action, data=data)
    assert removed.headers["location"].endswith("done=factor_removed")
    after = await client.get(f"/apps/{app.app_id}/v1/mfa", headers=bearer(tokens["access_token"]))
    assert after.json()["factors"] == []  # the last factor took the recovery codes along
    async with services.router.app(app.app_id) as conn:
        mailed = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE kind = 'mfa_factor_removed'"
        )
    assert mailed == 1


async def test_a_session_from_before_the_factor_counts_as_none(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    app = provision()  # mfa=optional: who enrolled a factor must use it
    client_id, _ = register(settings, app)
    # The browser signs in before the factor exists: a one-factor session.
    sub = await signup_user(client, app.app_id, "stepup-page@example.com")
    provider = Provider(app, client_id, "stepup-page@example.com", sub)
    tokens = await api_token(client, provider)
    page = await open_account(browser, provider)
    csrf = forms(page.text)[0].fields["csrf"]
    factor_id = await enrol_totp(client, app.app_id, tokens["access_token"])
    # Now the page wants a sign-in with the factor, as the authorization endpoint does.
    again = await browser.get(f"/apps/{app.app_id}/account")
    assert again.status_code == 302
    assert "/oauth/authorize/continue" in again.headers["location"]
    refused = await browser.post(
        f"/apps/{app.app_id}/account/factors/{factor_id}/remove", data={"csrf": csrf}
    )
    assert refused.status_code == 303
    assert "/oauth/authorize/continue" in refused.headers["location"]
    listed = await client.get(f"/apps/{app.app_id}/v1/mfa", headers=bearer(tokens["access_token"]))
    assert factor_id in [f["id"] for f in listed.json()["factors"]]  # nothing removed


async def test_factors_of_a_are_not_on_bs_page_nor_removable_from_it(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    a = provision(app_settings={"mfa": "off"})
    b = provision(app_settings={"mfa": "off"})
    client_a, _ = register(settings, a)
    client_b, _ = register(settings, b)
    pa = Provider(
        a, client_a, "twice@example.com", await signup_user(client, a.app_id, "twice@example.com")
    )
    pb = Provider(
        b, client_b, "twice@example.com", await signup_user(client, b.app_id, "twice@example.com")
    )
    factor_a = await enrol_totp(client, a.app_id, (await api_token(client, pa))["access_token"])
    page_b = await open_account(browser, pb)
    assert factor_a not in page_b.text
    assert "No second factor is set up." in page_b.text
    data = {"csrf": forms(page_b.text)[0].fields["csrf"]}
    gone = await browser.post(f"/apps/{b.app_id}/account/factors/{factor_a}/remove", data=data)
    assert gone.headers["location"].endswith("done=nothing")
    listed = await client.get(
        f"/apps/{a.app_id}/v1/mfa", headers=bearer((await api_token(client, pa))["access_token"])
    )
    assert factor_a in [f["id"] for f in listed.json()["factors"]]
