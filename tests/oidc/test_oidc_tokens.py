"""The authorization_code grant, ID tokens, UserInfo, client authentication and
RP-initiated logout (O2, O3, O5, O6, T1, T4, S3, A1)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

import httpx

from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.oauth import clients
from oneauth.services import Services
from oneauth.settings import Settings

from ._support import (
    PASSWORD,
    RP,
    RP_LOGOUT,
    exchange,
    form,
    jwt_claims,
    query,
    register,
    sign_in,
    signup,
)
from .conftest import Provider

MakeProvider = Callable[..., Awaitable[Provider]]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def refresh(
    http: httpx.AsyncClient, app_id: str, client_id: str, token: str
) -> httpx.Response:
    return await http.post(
        f"/apps/{app_id}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id},
    )


async def test_code_exchange_issues_tokens_per_oidc_core(
    make_provider: MakeProvider, browser: httpx.AsyncClient, settings: Settings
) -> None:
    p = await make_provider()
    issuer = settings.issuer_for(p.app_id)
    flow = await sign_in(browser, p.app_id, p.client_id, p.email, nonce="abc")
    assert flow.code.startswith("oac_")
    assert len(flow.code) >= 4 + 43
    response = await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "openid email profile"
    assert tokens["refresh_token"].startswith("ort_")

    header, claims = jwt_claims(tokens["id_token"])
    assert header["typ"] == "JWT"
    assert header["alg"] == "RS256"
    assert header["kid"]
    assert claims["iss"] == issuer
    assert claims["sub"] == p.sub
    assert claims["aud"] == p.client_id
    assert claims["azp"] == p.client_id
    assert claims["nonce"] == "abc"
    assert claims["amr"] == ["pwd"]
    assert claims["app_id"] == p.app_id
    assert claims["email"] == p.email
    assert claims["exp"] > claims["iat"] >= claims["auth_time"]
    for name in ("at_hash", "sid", "updated_at"):
        assert name in claims

    access_header, access = jwt_claims(tokens["access_token"])
    assert access_header["typ"] == "at+jwt"
    assert access["sid"] == claims["sid"]
    assert access["client_id"] == p.client_id
    assert access["auth_time"] == claims["auth_time"]

    # The access token works at UserInfo; the ID token never does (T1).
    info = await browser.get(
        f"/apps/{p.app_id}/oauth/userinfo", headers=bearer(tokens["access_token"])
    )
    assert info.status_code == 200
    assert info.headers["cache-control"] == "no-store"
    assert info.json() == {
        "sub": p.sub,
        "email": p.email,
        "email_verified": False,
        "updated_at": claims["updated_at"],
    }
    refused = await browser.get(
        f"/apps/{p.app_id}/oauth/userinfo", headers=bearer(tokens["id_token"])
    )
    assert refused.status_code == 401
    posted = await browser.post(
        f"/apps/{p.app_id}/oauth/userinfo", data={"access_token": tokens["access_token"]}
    )
    assert posted.json()["sub"] == p.sub
    anonymous = await browser.get(f"/apps/{p.app_id}/oauth/userinfo")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == f'Bearer realm="{p.app_id}"'

    # Refresh works for the code-flow session (rotation).
    rotated = await refresh(browser, p.app_id, p.client_id, tokens["refresh_token"])
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]


async def test_userinfo_claims_follow_the_scopes(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider()
    flow = await sign_in(browser, p.app_id, p.client_id, p.email, scope="openid")
    tokens = (await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)).json()
    info = await browser.get(
        f"/apps/{p.app_id}/oauth/userinfo", headers=bearer(tokens["access_token"])
    )
    assert info.json() == {"sub": p.sub}
    _, claims = jwt_claims(tokens["id_token"])
    assert "email" not in claims
    # Without openid there is no ID token, and UserInfo refuses the token.
    flow = await sign_in(browser, p.app_id, p.client_id, p.email, scope="email")
    tokens = (await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)).json()
    assert "id_token" not in tokens
    info = await browser.get(
        f"/apps/{p.app_id}/oauth/userinfo", headers=bearer(tokens["access_token"])
    )
    assert info.status_code == 403
    assert 'error="insufficient_scope"' in info.headers["www-authenticate"]


async def test_a_reused_code_fails_and_revokes_what_it_issued(
    make_provider: MakeProvider, browser: httpx.AsyncClient, services: Services
) -> None:
    p = await make_provider()
    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    first = await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)
    assert first.status_code == 200
    tokens = first.json()
    second = await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    # O3: the first exchange's session is gone: refresh token and access token.
    assert (
        await refresh(browser, p.app_id, p.client_id, tokens["refresh_token"])
    ).status_code == 400
    info = await browser.get(
        f"/apps/{p.app_id}/oauth/userinfo", headers=bearer(tokens["access_token"])
    )
    assert info.status_code == 401
    introspect_client, secret = register(
        services.settings, p.app, kind="confidential", grants=("client_credentials",), scopes=("x",)
    )
    assert secret is not None
    seen = await browser.post(
        f"/apps/{p.app_id}/oauth/introspect",
        data={"token": tokens["access_token"]},
        auth=(introspect_client, secret),
    )
    assert seen.json() == {"active": False}
    async with services.router.app(p.app_id) as conn:
        events = await conn.fetch(
            "SELECT event, outcome FROM audit_log"
            " WHERE event IN ('token.issue', 'token.code_reuse') ORDER BY id"
        )
    assert [(r["event"], r["outcome"]) for r in events] == [
        ("token.issue", "success"),
        ("token.code_reuse", "denied"),
    ]


async def test_two_concurrent_exchanges_of_one_code_succeed_once(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider()
    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    answers = await asyncio.gather(
        *(exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier) for _ in range(4))
    )
    assert sorted(r.status_code for r in answers) == [200, 400, 400, 400]


async def test_pkce_verifier_must_match_and_a_failed_try_burns_the_code(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider()
    for verifier in (None, "w" * 43, "short"):
        flow = await sign_in(browser, p.app_id, p.client_id, p.email)
        bad = await exchange(browser, p.app_id, p.client_id, flow.code, verifier)
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_grant"
        good = await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)
        assert good.status_code == 400  # single use, even after a failed try
    # A plain challenge (the verifier itself) can never be used either.
    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    plain = await exchange(browser, p.app_id, p.client_id, flow.code, flow.params["code_challenge"])
    assert plain.status_code == 400


async def test_redirect_uri_and_client_must_match_and_codes_expire(
    make_provider: MakeProvider, browser: httpx.AsyncClient, settings: Settings, services: Services
) -> None:
    p = await make_provider()
    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    missing = await browser.post(
        f"/apps/{p.app_id}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": flow.code,
            "client_id": p.client_id,
            "code_verifier": flow.verifier,
        },
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    # Another client of the same app cannot redeem it, and its try does not burn it.
    other, _ = register(settings, p.app)
    stolen = await exchange(browser, p.app_id, other, flow.code, flow.verifier)
    assert stolen.json()["error"] == "invalid_grant"
    wrong = await exchange(
        browser, p.app_id, p.client_id, flow.code, flow.verifier, redirect_uri=RP + "/"
    )
    assert wrong.json()["error"] == "invalid_grant"

    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    digest = hashlib.sha256(flow.code.encode()).digest()
    async with services.router.app(p.app_id) as conn:
        row = await conn.fetchrow(
            "SELECT expires_at - created_at AS ttl, code_hash FROM authorization_codes"
            " WHERE code_hash = $1",
            digest,
        )
        assert row is not None  # stored hashed: the raw code is nowhere in the table
        assert row["ttl"].total_seconds() <= 600
        await conn.execute(
            "UPDATE authorization_codes SET expires_at = now() - interval '1 second'"
            " WHERE code_hash = $1",
            digest,
        )
    expired = await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)
    assert expired.json()["error"] == "invalid_grant"


async def test_confidential_clients_authenticate_with_their_secret(
    provision: Callable[..., AppRecord],
    settings: Settings,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
) -> None:
    app = provision()
    await signup(client, app.app_id, "conf@example.com")
    client_id, secret = register(settings, app, kind="confidential")
    assert secret is not None
    assert secret.startswith("ocs_")
    assert len(secret) - 4 >= 43  # >= 256 bits of base64url
    post_id, post_secret = register(
        settings, app, kind="confidential", auth_method="client_secret_post"
    )
    assert post_secret is not None
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        stored = conn.execute("SELECT secret_hash FROM client_secrets").fetchall()
    assert all(row[0] != secret.encode() for row in stored)
    assert hashlib.sha256(secret.encode()).digest() in {bytes(r[0]) for r in stored}

    flow = await sign_in(browser, app.app_id, client_id, "conf@example.com")
    wrong = await exchange(
        browser, app.app_id, client_id, flow.code, flow.verifier, secret=secret + "x"
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    none = await exchange(browser, app.app_id, client_id, flow.code, flow.verifier)
    assert none.status_code == 401
    ok = await exchange(browser, app.app_id, client_id, flow.code, flow.verifier, secret=secret)
    assert ok.status_code == 200  # the failed attempts did not burn the code

    flow = await sign_in(browser, app.app_id, post_id, "conf@example.com")
    basic = await exchange(
        browser, app.app_id, post_id, flow.code, flow.verifier, secret=post_secret
    )
    assert basic.status_code == 401  # registered for client_secret_post only
    posted = await browser.post(
        f"/apps/{app.app_id}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": RP,
            "code_verifier": flow.verifier,
            "client_id": post_id,
            "client_secret": post_secret,
        },
    )
    assert posted.status_code == 200

    # Rotation with an overlap: both secrets work, then only the new one.
    async def answers(value: str, status: int) -> int:
        for _ in range(100):  # the client cache drops the client on NOTIFY
            response = await client.post(
                f"/apps/{app.app_id}/oauth/revoke", data={"token": "x"}, auth=(client_id, value)
            )
            if response.status_code == status:
                break
            await asyncio.sleep(0.05)
        return response.status_code

    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        newer = clients.rotate_secret(conn, client_id, overlap_seconds=3600)
    assert await answers(newer, 200) == 200
    assert await answers(secret, 200) == 200
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        newest = clients.rotate_secret(conn, client_id, overlap_seconds=0)
    assert await answers(newest, 200) == 200
    assert await answers(secret, 401) == 401
    assert await answers(newer, 401) == 401


async def test_a_replaced_secret_stops_at_its_overlap_while_the_client_is_cached(
    provision: Callable[..., AppRecord], settings: Settings, browser: httpx.AsyncClient
) -> None:
    """O5: the end of a rotation's overlap sends no change notice, and the client
    cache keeps a client for minutes: the old secret must still stop at its expiry
    (checked at each use), the new one go on working, and neither works at another
    app."""
    app = provision()
    client_id, secret = register(settings, app, kind="confidential")
    assert secret is not None
    path = f"/apps/{app.app_id}/oauth/revoke"
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        newer = clients.rotate_secret(conn, client_id, overlap_seconds=2)
        ends = conn.execute(
            "SELECT extract(epoch FROM expires_at)::float8 FROM client_secrets"
            " WHERE expires_at IS NOT NULL"
        ).fetchone()
    assert ends is not None

    async def status(value: str) -> int:
        response = await browser.post(path, data={"token": "x"}, auth=(client_id, value))
        return response.status_code

    for _ in range(100):  # the rotation's notice dropped the cached client
        if await status(newer) == 200:
            break
        await asyncio.sleep(0.05)
    if time.time() < ends[0] - 0.5:  # loaded (and cached) inside the overlap
        assert await status(secret) == 200
    await asyncio.sleep(max(0.0, ends[0] + 0.2 - time.time()))
    assert await status(secret) == 401  # no notice came: the clock ended it
    assert await status(newer) == 200
    # Cached in app A, the client means nothing in app B, with either secret.
    other = provision()
    for value in (newer, secret):
        response = await browser.post(
            f"/apps/{other.app_id}/oauth/revoke", data={"token": "x"}, auth=(client_id, value)
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


async def test_grants_and_user_tokens_are_per_client(
    make_provider: MakeProvider, browser: httpx.AsyncClient, settings: Settings
) -> None:
    p = await make_provider()
    # client_credentials: refused to a public client and to one not registered for it.
    public = await browser.post(
        f"/apps/{p.app_id}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": p.client_id},
    )
    assert public.json()["error"] == "unauthorized_client"
    web_id, web_secret = register(settings, p.app, kind="confidential")
    assert web_secret is not None
    not_allowed = await browser.post(
        f"/apps/{p.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(web_id, web_secret),
    )
    assert not_allowed.json()["error"] == "unauthorized_client"
    # A client-credentials token acts for no user: UserInfo refuses it (T4).
    svc_id, svc_secret = register(
        settings,
        p.app,
        kind="confidential",
        grants=("client_credentials",),
        scopes=("openid", "orders:read"),
        redirect_uris=(),
    )
    assert svc_secret is not None
    cc = await browser.post(
        f"/apps/{p.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(svc_id, svc_secret),
    )
    assert cc.status_code == 200
    refused = await browser.get(
        f"/apps/{p.app_id}/oauth/userinfo", headers=bearer(cc.json()["access_token"])
    )
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    # A client without the code grant cannot redeem codes either.
    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    svc_code = await exchange(
        browser, p.app_id, svc_id, flow.code, flow.verifier, secret=svc_secret
    )
    assert svc_code.json()["error"] == "unauthorized_client"


async def test_logout_with_id_token_hint(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider()
    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    tokens = (await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)).json()
    url = f"/apps/{p.app_id}/oauth/logout"
    # An unregistered post-logout URI (even a near miss) is never followed.
    for target in (RP_LOGOUT + "/", RP, "https://evil.example/bye"):
        bad = await browser.get(
            url, params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": target}
        )
        assert bad.status_code == 400
        assert "location" not in bad.headers
    assert (
        await refresh(browser, p.app_id, p.client_id, tokens["refresh_token"])
    ).status_code == 200
    assert browser.cookies.get(f"oneauth_session_{p.app_id}")

    bye = await browser.get(
        url,
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": RP_LOGOUT,
            "state": "s-1",
        },
    )
    assert bye.status_code == 302
    assert bye.headers["location"] == RP_LOGOUT + "?state=s-1"
    assert browser.cookies.get(f"oneauth_session_{p.app_id}") is None
    # Everything the browser session started has ended (S3), and the next
    # authorization request asks for the password again.
    rotated = await refresh(browser, p.app_id, p.client_id, tokens["refresh_token"])
    assert rotated.status_code == 400
    again = await sign_in(browser, p.app_id, p.client_id, p.email)
    assert again.code


async def test_logout_without_hint_asks_the_user(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider()
    await sign_in(browser, p.app_id, p.client_id, p.email)
    url = f"/apps/{p.app_id}/oauth/logout"
    params = {"client_id": p.client_id, "post_logout_redirect_uri": RP_LOGOUT, "state": "s-2"}
    page = await browser.get(url, params=params)
    assert page.status_code == 200
    assert "Sign out of" in page.text
    assert "form-action 'self' https://rp.example.com;" in page.headers["content-security-policy"]
    confirm = form(page.text)
    # "Stay" keeps the session; a forged confirmation does nothing.
    stay = await browser.post(confirm.action, data={**confirm.fields, "decision": "stay"})
    assert stay.status_code == 200
    forged = await browser.post(
        confirm.action, data={**confirm.fields, "decision": "logout", "csrf": "0" * 64}
    )
    assert forged.status_code == 400
    assert browser.cookies.get(f"oneauth_session_{p.app_id}")
    silent = await browser.get(
        f"/apps/{p.app_id}/oauth/authorize",
        params={**flow_params(p), "prompt": "none"},
    )
    assert "code" in query(silent.headers["location"])

    done = await browser.post(confirm.action, data={**confirm.fields, "decision": "logout"})
    assert done.status_code == 303
    assert done.headers["location"] == RP_LOGOUT + "?state=s-2"
    silent = await browser.get(
        f"/apps/{p.app_id}/oauth/authorize",
        params={**flow_params(p), "prompt": "none"},
    )
    assert query(silent.headers["location"])["error"] == "login_required"
    # Signed out already and no hint: nothing to confirm, back to the client.
    again = await browser.get(url, params=params)
    assert again.status_code == 302
    # Without a client the post-logout URI cannot be checked: refused.
    orphan = await browser.get(url, params={"post_logout_redirect_uri": RP_LOGOUT})
    assert orphan.status_code == 400


def flow_params(p: Provider) -> dict[str, str]:
    from ._support import authorize_params, pkce_pair

    return authorize_params(p.client_id, pkce_pair()[1])


async def test_logout_hint_of_another_user_needs_confirmation(
    make_provider: MakeProvider,
    browser: httpx.AsyncClient,
    service: object,
    client: httpx.AsyncClient,
) -> None:
    p = await make_provider()
    await signup(client, p.app_id, "other@example.com")
    other_browser = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service),  # type: ignore[arg-type]
        base_url="http://testserver",
    )
    async with other_browser:
        flow = await sign_in(other_browser, p.app_id, p.client_id, "other@example.com")
        hint = (
            await exchange(other_browser, p.app_id, p.client_id, flow.code, flow.verifier)
        ).json()
    await sign_in(browser, p.app_id, p.client_id, p.email)
    page = await browser.get(
        f"/apps/{p.app_id}/oauth/logout", params={"id_token_hint": hint["id_token"]}
    )
    assert page.status_code == 200  # a question, not an immediate sign-out
    assert 'value="logout"' in page.text
    assert browser.cookies.get(f"oneauth_session_{p.app_id}")


async def test_password_change_ends_browser_sessions(
    make_provider: MakeProvider, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    p = await make_provider()
    await sign_in(browser, p.app_id, p.client_id, p.email)
    login = await client.post(
        f"/apps/{p.app_id}/v1/login", json={"email": p.email, "password": PASSWORD}
    )
    changed = await client.post(
        f"/apps/{p.app_id}/v1/password",
        json={"current_password": PASSWORD, "new_password": "an entirely new passphrase 9"},
        headers=bearer(login.json()["access_token"]),
    )
    assert changed.status_code == 204
    silent = await browser.get(
        f"/apps/{p.app_id}/oauth/authorize", params={**flow_params(p), "prompt": "none"}
    )
    assert query(silent.headers["location"])["error"] == "login_required"


async def test_the_flow_is_audited_without_secrets(
    make_provider: MakeProvider, browser: httpx.AsyncClient, services: Services
) -> None:
    p = await make_provider()
    flow = await sign_in(browser, p.app_id, p.client_id, p.email, consent="deny")
    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    tokens = (await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)).json()
    await browser.get(
        f"/apps/{p.app_id}/oauth/logout", params={"id_token_hint": tokens["id_token"]}
    )
    async with services.router.app(p.app_id) as conn:
        rows = await conn.fetch(
            "SELECT event, outcome, actor_id, target_type, request_id, details::text AS details"
            " FROM audit_log WHERE event <> 'user.signup' ORDER BY id"
        )
    assert [(r["event"], r["outcome"]) for r in rows] == [
        ("auth.login", "success"),  # signup logs in (first-party API)
        ("auth.login", "success"),  # the hosted login page
        ("consent.deny", "success"),
        ("consent.grant", "success"),
        ("oauth.authorize", "success"),
        ("token.issue", "success"),
        ("auth.logout", "success"),
    ]
    assert all(r["request_id"] for r in rows)
    assert all(r["actor_id"] == p.sub for r in rows[1:])
    text = " ".join(r["details"] for r in rows)
    for secret in (flow.code, tokens["refresh_token"], tokens["access_token"], PASSWORD):
        assert secret not in text
    for prefix in ("oac_", "ort_", "obs_", "eyJ"):
        assert prefix not in text
