"""B1 for the provider: app B can neither see nor use app A's clients, codes,
browser sessions, CSRF tokens, sealed requests, access tokens or ID tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from ._support import (
    PASSWORD,
    authorize_params,
    exchange,
    form,
    pkce_pair,
    query,
    sign_in,
)
from .conftest import Provider

MakeProvider = Callable[..., Awaitable[Provider]]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_app_b_refuses_everything_of_app_a(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    a = await make_provider("twin@example.com")
    b = await make_provider("twin@example.com")
    assert a.sub != b.sub
    _, challenge = pkce_pair()

    # A's client at B's authorize: an error page, never a redirect.
    page = await browser.get(
        f"/apps/{b.app_id}/oauth/authorize", params=authorize_params(a.client_id, challenge)
    )
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "<code>invalid_client</code>" in page.text

    # Sign in at A: a code, tokens, a browser session cookie, a CSRF cookie.
    flow = await sign_in(browser, a.app_id, a.client_id, a.email)
    code_for_b_test = flow.code

    # A's code at B's token endpoint, with B's client and with A's client id.
    with_b = await exchange(browser, b.app_id, b.client_id, code_for_b_test, flow.verifier)
    assert with_b.status_code == 400
    assert with_b.json()["error"] == "invalid_grant"
    with_a = await exchange(browser, b.app_id, a.client_id, code_for_b_test, flow.verifier)
    assert with_a.status_code == 401
    assert with_a.json()["error"] == "invalid_client"
    # B's refusals did not burn A's code.
    tokens = await exchange(browser, a.app_id, a.client_id, code_for_b_test, flow.verifier)
    assert tokens.status_code == 200
    a_tokens = tokens.json()

    # A's access token at B's UserInfo; A's ID token as a hint at B's logout.
    info = await browser.get(
        f"/apps/{b.app_id}/oauth/userinfo", headers=bearer(a_tokens["access_token"])
    )
    assert info.status_code == 401
    hinted = await browser.get(
        f"/apps/{b.app_id}/oauth/logout", params={"id_token_hint": a_tokens["id_token"]}
    )
    assert hinted.status_code == 400
    assert "location" not in hinted.headers
    # A's refresh token at B's token endpoint.
    refreshed = await browser.post(
        f"/apps/{b.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": a_tokens["refresh_token"],
            "client_id": b.client_id,
        },
    )
    assert refreshed.status_code == 400

    # A's browser session does not sign anyone in at B: B shows its login page,
    # also under prompt=none (login_required), ...
    cookie_a = browser.cookies.get(f"oneauth_session_{a.app_id}")
    assert cookie_a
    to_b = await browser.get(
        f"/apps/{b.app_id}/oauth/authorize", params=authorize_params(b.client_id, challenge)
    )
    assert to_b.status_code == 200
    assert 'name="password"' in to_b.text
    silent = await browser.get(
        f"/apps/{b.app_id}/oauth/authorize",
        params=authorize_params(b.client_id, challenge, prompt="none"),
    )
    assert query(silent.headers["location"])["error"] == "login_required"
    # ... even when A's cookie value is presented under B's name and path.
    browser.cookies.set(f"oneauth_session_{b.app_id}", cookie_a, path=f"/apps/{b.app_id}")
    forced = await browser.get(
        f"/apps/{b.app_id}/oauth/authorize",
        params=authorize_params(b.client_id, challenge, prompt="none"),
    )
    assert query(forced.headers["location"])["error"] == "login_required"
    # And A's session still works at A.
    at_a = await browser.get(
        f"/apps/{a.app_id}/oauth/authorize",
        params=authorize_params(a.client_id, challenge, prompt="none"),
    )
    assert "code" in query(at_a.headers["location"])


async def test_forms_of_app_a_do_nothing_at_app_b(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    a = await make_provider("forms@example.com")
    b = await make_provider("forms@example.com")
    _, challenge = pkce_pair()
    page_a = await browser.get(
        f"/apps/{a.app_id}/oauth/authorize", params=authorize_params(a.client_id, challenge)
    )
    page_b = await browser.get(
        f"/apps/{b.app_id}/oauth/authorize", params=authorize_params(b.client_id, challenge)
    )
    form_a, form_b = form(page_a.text), form(page_b.text)
    login_b = f"http://testserver/apps/{b.app_id}/login"
    creds = {"email": b.email, "password": PASSWORD}
    # A's CSRF token is not valid at B (the MAC binds the app id).
    csrf_a = await browser.post(
        login_b, data={**form_b.fields, **creds, "csrf": form_a.fields["csrf"]}
    )
    assert csrf_a.status_code == 403
    # A's sealed authorization request does not open at B.
    flow_a = await browser.post(
        login_b, data={**form_b.fields, **creds, "flow": form_a.fields["flow"]}
    )
    assert flow_a.status_code == 400
    assert "<code>flow_expired</code>" in flow_a.text
    resumed = await browser.get(
        f"/apps/{b.app_id}/oauth/authorize/continue", params={"flow": form_a.fields["flow"]}
    )
    assert resumed.status_code == 400
    assert browser.cookies.get(f"oneauth_session_{b.app_id}") is None
    # With B's own values the same form works.
    ok = await browser.post(login_b, data={**form_b.fields, **creds})
    assert ok.status_code == 303


async def test_consents_and_logout_stay_inside_their_app(
    make_provider: MakeProvider, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    a = await make_provider("scoped@example.com")
    b = await make_provider("scoped@example.com")
    for p in (a, b):
        await sign_in(browser, p.app_id, p.client_id, p.email)
    first_party_a = (
        await client.post(
            f"/apps/{a.app_id}/v1/login", json={"email": a.email, "password": PASSWORD}
        )
    ).json()["access_token"]
    # A's token lists nothing at B and revokes nothing there.
    listed = await client.get(f"/apps/{b.app_id}/v1/consents", headers=bearer(first_party_a))
    assert listed.status_code == 401
    revoked = await client.delete(
        f"/apps/{b.app_id}/v1/consents/{b.client_id}", headers=bearer(first_party_a)
    )
    assert revoked.status_code == 401
    # Signing out of B (confirmed on B's page) leaves the session at A alone.
    page = await browser.get(f"/apps/{b.app_id}/oauth/logout")
    confirm = form(page.text)
    done = await browser.post(confirm.action, data={**confirm.fields, "decision": "logout"})
    assert done.status_code == 200
    _, challenge = pkce_pair()
    silent_a = await browser.get(
        f"/apps/{a.app_id}/oauth/authorize",
        params=authorize_params(a.client_id, challenge, prompt="none"),
    )
    assert "code" in query(silent_a.headers["location"])
    silent_b = await browser.get(
        f"/apps/{b.app_id}/oauth/authorize",
        params=authorize_params(b.client_id, challenge, prompt="none"),
    )
    assert query(silent_b.headers["location"])["error"] == "login_required"
