"""The first-party API (/v1) and third-party clients' tokens (issue 10 item 4, B1, T4).

A third-party client's access token gets at ``/v1/me`` exactly what UserInfo
releases for its scopes, and nothing at the routes that change the account or
its grants; tokens of the app's own clients get the full first-party view.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from oneauth.settings import Settings
from test_schemas import check

from ._support import PASSWORD, exchange, register, sign_in
from .conftest import Provider

MakeProvider = Callable[..., Awaitable[Provider]]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def third_party_tokens(
    browser: httpx.AsyncClient, p: Provider, scope: str, client_id: str | None = None
) -> dict[str, str]:
    cid = client_id or p.client_id
    flow = await sign_in(browser, p.app_id, cid, p.email, scope=scope)
    response = await exchange(browser, p.app_id, cid, flow.code, flow.verifier)
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    assert set(tokens["scope"].split()) == set(scope.split())
    return tokens


async def test_me_gives_a_third_party_token_only_what_userinfo_gives(
    make_provider: MakeProvider, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    p = await make_provider("scopes@example.com")
    for scope, expected in (
        ("openid", {"sub"}),
        ("openid email", {"sub", "email", "email_verified"}),
        ("openid profile", {"sub", "updated_at"}),
    ):
        tokens = await third_party_tokens(browser, p, scope)
        me = await client.get(f"/apps/{p.app_id}/v1/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 200, me.text
        assert me.headers["cache-control"] == "no-store"
        body = me.json()
        assert set(body) == expected, scope
        assert body["sub"] == p.sub
        check("me", body)
        info = await client.get(
            f"/apps/{p.app_id}/oauth/userinfo", headers=bearer(tokens["access_token"])
        )
        assert info.status_code == 200
        assert body == info.json()
        if "email" in expected:
            assert body["email"] == p.email
        else:
            assert p.email not in me.text
    # Without openid UserInfo answers nothing, and so does /v1/me (problem format).
    tokens = await third_party_tokens(browser, p, "email")
    me = await client.get(f"/apps/{p.app_id}/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 403
    assert me.headers["content-type"].startswith("application/problem+json")
    assert me.json()["code"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in me.headers["www-authenticate"]
    assert p.email not in me.text


async def test_first_party_routes_refuse_third_party_tokens(
    make_provider: MakeProvider, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    p = await make_provider("refuse@example.com")
    tokens = await third_party_tokens(browser, p, "openid email profile")
    theirs = bearer(tokens["access_token"])
    base = f"/apps/{p.app_id}"
    new_password = "a brand new passphrase 7"
    refused = [
        await client.post(
            f"{base}/v1/password",
            headers=theirs,
            json={"current_password": PASSWORD, "new_password": new_password},
        ),
        await client.post(
            f"{base}/v1/email/change",
            headers=theirs,
            json={"new_email": "taken-over@example.com", "password": PASSWORD},
        ),
        await client.get(f"{base}/v1/consents", headers=theirs),
        await client.delete(f"{base}/v1/consents/{p.client_id}", headers=theirs),
        await client.post(f"{base}/v1/logout", headers=theirs),
    ]
    for response in refused:
        assert response.status_code == 403, (response.request.url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "wrong_client"
    # Nothing happened: the password is the old one, the email too, no mail queued,
    # the consent and the client's session live on.
    login = await client.post(f"{base}/v1/login", json={"email": p.email, "password": PASSWORD})
    assert login.status_code == 200
    mine = bearer(login.json()["access_token"])
    me = (await client.get(f"{base}/v1/me", headers=mine)).json()
    assert me["email"] == p.email
    listed = (await client.get(f"{base}/v1/consents", headers=mine)).json()
    assert [c["client_id"] for c in listed["consents"]] == [p.client_id]
    assert (await client.get(f"{base}/oauth/userinfo", headers=theirs)).status_code == 200
    # The same routes take the first-party token.
    changed = await client.post(
        f"{base}/v1/password",
        headers=mine,
        json={"current_password": PASSWORD, "new_password": new_password},
    )
    assert changed.status_code == 204


async def test_a_first_party_web_client_gets_the_first_party_view(
    make_provider: MakeProvider,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    settings: Settings,
) -> None:
    # The operator marks the app's own web app first-party: it is the app, not a
    # third party, so it may use the first-party API (and asks no consent).
    p = await make_provider("own@example.com")
    own_id, _ = register(settings, p.app, first_party=True, name="Own web app")
    tokens = await third_party_tokens(browser, p, "openid", client_id=own_id)
    me = await client.get(f"/apps/{p.app_id}/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == p.email
    assert me.json()["app_id"] == p.app_id


async def test_another_apps_tokens_are_refused_at_me(
    make_provider: MakeProvider, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    a = await make_provider("cross@example.com")
    b = await make_provider("cross@example.com")
    b_first_party = await client.post(
        f"/apps/{b.app_id}/v1/login", json={"email": b.email, "password": PASSWORD}
    )
    b_third_party = await third_party_tokens(browser, b, "openid email")
    for token in (b_first_party.json()["access_token"], b_third_party["access_token"]):
        me = await client.get(f"/apps/{a.app_id}/v1/me", headers=bearer(token))
        assert me.status_code == 401
        assert me.json()["code"] == "invalid_token"
        assert a.email not in me.text
        assert (await client.get(f"/apps/{b.app_id}/v1/me", headers=bearer(token))).status_code == (
            200
        )
