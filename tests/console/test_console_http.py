"""The admin console over HTTP (issue 15): sign-in, session cookie, CSRF, grants.

Real service (ASGI, lifespan running) on the test Postgres; operators sign in at
the platform app's hosted login page exactly as a browser without JavaScript
would (tests/console/test_console_browser.py does it in Chromium).
"""

from __future__ import annotations

import asyncio
import html
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.responses import Response

from oidc._support import signup
from oneauth.apps.models import AppRecord
from oneauth.console import grants, session
from oneauth.db import ops
from oneauth.services import Services
from oneauth.settings import Settings

from ._kit import csrf_of, operator, revoke, sign_in


async def _status_of(services: Services, app: AppRecord, user_id: str) -> str:
    async with services.router.enter(app) as conn:
        status: str = await conn.fetchval(
            "SELECT status FROM users WHERE id = $1", uuid.UUID(user_id)
        )
    return status


async def test_unauthenticated_pages_go_to_sign_in(
    browser: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    for path in ("/console/", f"/console/apps/{app.app_id}/users?email=a"):
        response = await browser.get(path)
        assert response.status_code == 302
        location = urlsplit(response.headers["location"])
        assert location.path == "/console/login"
        assert parse_qs(location.query)["next"] == [path]
    assert (await browser.get("/console")).headers["location"] == "/console/"
    # A POST is answered 303 (never replayed) to the app's page after sign-in.
    response = await browser.post(f"/console/apps/{app.app_id}/users/{uuid.uuid4()}/disable")
    assert response.status_code == 303
    assert urlsplit(response.headers["location"]).path == "/console/login"
    # The sign-in starts at the platform app: code + PKCE (S256), state and nonce.
    response = await browser.get("/console/login", params={"next": "/console/"})
    assert response.status_code == 302
    target = urlsplit(response.headers["location"])
    assert target.path == "/platform/oauth/authorize"
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert params["client_id"] == "cl_oneauth-console"
    assert params["redirect_uri"] == "http://testserver/console/callback"
    assert params["code_challenge_method"] == "S256"
    assert params["state"]
    assert params["nonce"]
    assert params["code_challenge"]
    cookie = response.headers["set-cookie"]
    assert "oneauth_console_login=" in cookie
    assert "HttpOnly" in cookie
    assert "Path=/console" in cookie
    assert "SameSite=lax" in cookie


async def test_open_redirect_and_a_forged_callback_are_refused(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/console/login", params={"next": "https://evil.example/"})
    assert response.status_code == 302
    # The callback without the pending sign-in cookie, or with another state.
    browser.cookies.clear()
    answer = await browser.get("/console/callback", params={"code": "x", "state": "y"})
    assert answer.status_code == 400
    await browser.get("/console/login")
    answer = await browser.get("/console/callback", params={"code": "x", "state": "other"})
    assert answer.status_code == 400
    # RFC 9207: an answer naming another issuer is refused before the code is used.
    login = await browser.get("/console/login")
    state = parse_qs(urlsplit(login.headers["location"]).query)["state"][0]
    mixed = await browser.get(
        "/console/callback",
        params={"code": "x", "state": state, "iss": "http://testserver/apps/other"},
    )
    assert mixed.status_code == 400
    assert "another issuer" in mixed.text
    assert "session" not in str(browser.cookies.keys()).replace("login", "")
    assert rp_next("https://evil.example/") == "/console/"
    assert rp_next("//evil.example/console/") == "/console/"
    assert rp_next("/console/apps/x") == "/console/apps/x"


def rp_next(value: str) -> str:
    from oneauth.console.rp import safe_next

    return safe_next(value)


async def test_session_cookie_flags_and_server_side_row(
    browser: httpx.AsyncClient, settings: Settings, services: Services
) -> None:
    email = operator(settings, (None, "viewer"))
    await sign_in(browser, email)
    raw = browser.cookies.get("oneauth_console")
    assert raw
    assert raw.startswith("ocs_")
    assert len(raw) > 40
    # The row holds the token's hash only, and the platform tokens sealed.
    async with services.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT token_hash, tokens_sealed, operator_email, expires_at - created_at AS life"
            " FROM oneauth.console_sessions WHERE operator_email = $1",
            email,
        )
    assert row is not None
    assert raw.encode() not in row["token_hash"]
    assert "eyJ" not in row["tokens_sealed"]  # no JWT in the clear
    assert row["life"] == timedelta(seconds=session.ABSOLUTE_TTL)
    # The Set-Cookie attributes, on http (no Secure) and on https (Secure).
    plain = Response()
    session.set_cookie(plain, settings, session.COOKIE, raw, 60)
    header = plain.headers["set-cookie"]
    assert "HttpOnly" in header
    assert "SameSite=lax" in header
    assert "Path=/console" in header
    assert "Secure" not in header
    secure = Response()
    https = Settings(env="test", public_url="https://auth.example.org")
    session.set_cookie(secure, https, session.COOKIE, raw, 60)
    assert "Secure" in secure.headers["set-cookie"]
    # The picker answers; sign-out ends the row and a replayed cookie is dead.
    page = await browser.get("/console/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith(
        "default-src 'none'; script-src 'self'"
    )
    assert "<script>" not in page.text
    out = await browser.post("/console/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    browser.cookies.set("oneauth_console", raw, domain="testserver.local", path="/console")
    again = await browser.get("/console/")
    assert again.status_code == 302


async def test_idle_and_absolute_timeouts(
    browser: httpx.AsyncClient, settings: Settings, services: Services
) -> None:
    email = operator(settings, (None, "viewer"))
    for column, age in (("last_used_at", session.IDLE_TTL + 5), ("expires_at", 1)):
        await sign_in(browser, email)
        assert (await browser.get("/console/")).status_code == 200
        async with services.pool.acquire() as conn:
            sql = (
                "UPDATE oneauth.console_sessions SET last_used_at = now() - $2::interval"
                if column == "last_used_at"
                else "UPDATE oneauth.console_sessions SET expires_at = now() - $2::interval"
            )
            await conn.execute(sql + " WHERE operator_email = $1", email, timedelta(seconds=age))
        assert (await browser.get("/console/")).status_code == 302
        browser.cookies.clear()


async def _admin_at(
    browser: httpx.AsyncClient, settings: Settings, app: AppRecord, role: str = "admin"
) -> str:
    email = operator(settings, (app.app_id, role))
    await sign_in(browser, email, f"/console/apps/{app.app_id}")
    return email


async def test_csrf_is_required_on_every_post(
    browser: httpx.AsyncClient,
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    client: httpx.AsyncClient,
) -> None:
    app = provision()
    user_id = await signup(client, app.app_id, "csrf@example.com")
    await _admin_at(browser, settings, app)
    page = await browser.get(f"/console/apps/{app.app_id}/users/{user_id}")
    assert page.status_code == 200, page.text
    token = csrf_of(page.text)
    url = f"/console/apps/{app.app_id}/users/{user_id}/disable"
    for data, headers in (
        ({}, {}),
        ({"csrf": "0" * 64}, {}),
        ({"csrf": token}, {"origin": "https://evil.example"}),
        ({"csrf": token}, {"sec-fetch-site": "cross-site"}),
    ):
        refused = await browser.post(url, data=data, headers=headers)
        assert refused.status_code == 403, (data, headers)
        assert await _status_of(services, app, user_id) == "active"
    done = await browser.post(url, data={"csrf": token})
    assert done.status_code == 303
    assert await _status_of(services, app, user_id) == "disabled"
    # Another operator's session has another token.
    other = httpx.AsyncClient(transport=browser._transport, base_url="http://testserver")
    async with other:
        await _admin_at(other, settings, app)
        back = await other.post(
            f"/console/apps/{app.app_id}/users/{user_id}/enable", data={"csrf": token}
        )
        assert back.status_code == 403


async def test_a_viewer_has_no_buttons_and_cannot_post(
    browser: httpx.AsyncClient,
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    client: httpx.AsyncClient,
) -> None:
    app = provision()
    user_id = await signup(client, app.app_id, "viewer-target@example.com")
    email = await _admin_at(browser, settings, app, role="viewer")
    page = await browser.get(f"/console/apps/{app.app_id}/users/{user_id}")
    assert page.status_code == 200
    assert "/disable" not in page.text
    assert "Reset MFA" not in page.text
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]  # the sign-out form's
    refused = await browser.post(
        f"/console/apps/{app.app_id}/users/{user_id}/disable", data={"csrf": token}
    )
    assert refused.status_code == 403
    assert await _status_of(services, app, user_id) == "active"
    # ... and the API itself refuses the viewer's delegated token.
    from oneauth.admin import delegation
    from oneauth.admin.scopes import READ_SCOPES

    sub = await _sub_of(services, email)
    viewer_token = (await delegation.mint(services, app, sub, email, READ_SCOPES)).access_token
    answer = await client.post(
        f"/apps/{app.app_id}/admin/v1/users/{user_id}/disable",
        headers={"authorization": f"Bearer {viewer_token}"},
    )
    assert answer.status_code == 403
    assert answer.json()["code"] == "insufficient_scope"
    assert await _status_of(services, app, user_id) == "active"


async def _sub_of(services: Services, email: str) -> str:
    async with services.pool.acquire() as conn:
        sub = await conn.fetchval(
            "SELECT operator_sub FROM oneauth.console_sessions WHERE operator_email = $1"
            " ORDER BY created_at DESC LIMIT 1",
            email,
        )
    return str(sub)


async def test_a_revoked_grant_stops_at_the_next_request(
    browser: httpx.AsyncClient, settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision(name="Revoked Soon")
    email = await _admin_at(browser, settings, app)
    assert (await browser.get(f"/console/apps/{app.app_id}/users")).status_code == 200
    picker = await browser.get("/console/", params={"q": app.app_id})
    assert app.app_id in picker.text
    revoke(settings, email, app.app_id)
    assert (await browser.get(f"/console/apps/{app.app_id}/users")).status_code == 404
    picker = await browser.get("/console/", params={"q": app.app_id})
    assert picker.status_code == 200
    assert f'href="/console/apps/{app.app_id}"' not in picker.text


async def test_an_admin_of_a_sees_nothing_of_b(
    browser: httpx.AsyncClient,
    settings: Settings,
    provision: Callable[..., AppRecord],
    client: httpx.AsyncClient,
) -> None:
    a, b = provision(name="Alpha Shop"), provision(name="Beta Shop")
    b_user = await signup(client, b.app_id, "b-only@example.com")
    await signup(client, a.app_id, "a-only@example.com")
    await _admin_at(browser, settings, a)
    picker = await browser.get("/console/")
    assert a.app_id in picker.text
    assert b.app_id not in picker.text
    assert b.app_id not in (await browser.get("/console/", params={"q": "Beta"})).text
    for path in ("", "/users", f"/users/{b_user}", "/clients", "/keys", "/settings", "/audit"):
        assert (await browser.get(f"/console/apps/{b.app_id}{path}")).status_code == 404, path
    # B's user id under A's path: A's API does not know it.
    assert (await browser.get(f"/console/apps/{a.app_id}/users/{b_user}")).status_code == 404
    listed = await browser.get(f"/console/apps/{a.app_id}/users")
    assert "a-only@example.com" in listed.text
    assert "b-only@example.com" not in listed.text
    # An unknown app answers exactly like an ungranted one.
    unknown = await browser.get("/console/apps/no-such-app-here/users")
    assert unknown.status_code == 404
    assert unknown.text.replace("no-such-app-here", "") == (
        await browser.get(f"/console/apps/{b.app_id}/users")
    ).text.replace(b.app_id, "")


async def test_picker_search_pagination_and_recent_in_one_query(
    settings: Settings, services: Services, provision: Callable[..., AppRecord]
) -> None:
    tag = uuid.uuid4().hex[:6]
    made = [provision(f"pk{tag}-{i}", name=f"Picker {tag} {i}") for i in range(5)]
    sub = uuid.uuid4()
    # Grants are the operator's to write (`platform operators grant`); the service reads them.
    with ops.connect(settings.operator_url) as sync:
        sync.execute(
            "INSERT INTO oneauth.console_grants (operator_sub, app_id, role)"
            " VALUES (%s, NULL, 'viewer'), (%s, %s, 'admin')",
            (sub, sub, made[1].app_id),
        )
        sync.commit()
    async with services.pool.acquire() as conn:
        first = await grants.picker(conn, sub, search=f"pk{tag}", after=None, limit=2)
        assert [a.app_id for a in first.apps] == [made[0].app_id, made[1].app_id]
        assert first.next_after == made[1].app_id
        # An app grant and the all-apps grant both apply: the stronger one counts.
        assert [a.role for a in first.apps] == ["viewer", "admin"]
        second = await grants.picker(conn, sub, search=f"pk{tag}", after=first.next_after, limit=2)
        assert [a.app_id for a in second.apps] == [made[2].app_id, made[3].app_id]
        by_name = await grants.picker(conn, sub, search=f"picker {tag} 4", after=None, limit=10)
        assert [a.app_id for a in by_name.apps] == [made[4].app_id]
        assert (await grants.picker(conn, sub, search="%", after=None, limit=10)).apps == []
        await grants.remember(conn, sub, made[3].app_id)
        await grants.remember(conn, sub, made[0].app_id)
        # ONE statement for the page, its next cursor and the recent apps.
        statements: list[str] = []

        def log(record: Any) -> None:
            statements.append(record.query)

        conn.add_query_logger(log)
        page = await grants.picker(conn, sub, search=None, after=None, limit=1)
        await asyncio.sleep(0.05)  # loggers are called soon after, not within, the query
        conn.remove_query_logger(log)
        assert len(statements) == 1
        assert [a.app_id for a in page.recent] == [made[0].app_id, made[3].app_id]
        assert all(a.role == "viewer" for a in page.recent)


async def test_every_app_page_has_the_banner_and_goes_through_the_api(
    browser: httpx.AsyncClient,
    settings: Settings,
    provision: Callable[..., AppRecord],
    client: httpx.AsyncClient,
) -> None:
    app = provision(name="Banner & <Co>")
    await signup(client, app.app_id, "banner@example.com")
    await _admin_at(browser, settings, app)
    base = f"/console/apps/{app.app_id}"
    for path in ("", "/users", "/orgs", "/clients", "/keys", "/settings", "/audit"):
        page = await browser.get(base + path)
        assert page.status_code == 200, (path, page.text)
        assert f'data-app-id="{app.app_id}"' in page.text, path
        assert "Banner &amp; &lt;Co&gt;" in page.text, path  # autoescaped
        assert "<script" not in page.text
    token = csrf_of((await browser.get(base + "/keys")).text)
    # Keys: rotation goes through the API (and is audited there).
    before = (await browser.get(base + "/keys")).text.count("<tr>")
    rotated = await browser.post(base + "/keys/rotate", data={"csrf": token, "force": "on"})
    assert rotated.status_code == 303, rotated.text
    assert (await browser.get(base + "/keys")).text.count("<tr>") > before
    # ... and the audit viewer shows it, with the operator as the actor, filtered.
    audit = await browser.get(base + "/audit", params={"event": "admin.keys.rotate"})
    assert audit.status_code == 200, audit.text
    assert audit.text.count("<tr>") == 2  # the header and the one row
    assert "admin.keys.rotate" in audit.text
    assert "operator" in audit.text
    later = await browser.get(
        base + "/audit", params={"event": "admin.keys.rotate", "from": "2999-01-01T00:00"}
    )
    assert later.status_code == 200
    assert "admin.keys.rotate</td>" not in later.text
    # The branding preview: only validated colours reach a stylesheet.
    preview = await browser.get(base + "/settings", params={"preview_color": "#ff0000"})
    assert "/console/assets/preview.css?color=ff0000" in preview.text
    css = await browser.get("/console/assets/preview.css", params={"color": "ff0000"})
    assert "--brand: #ff0000" in css.text
    bad = await browser.get("/console/assets/preview.css", params={"color": "red;}body{x"})
    assert "red" not in bad.text
    # A client's secret is on the page that created it, and never again.
    made = await browser.post(
        base + "/clients",
        data={
            "csrf": token,
            "name": "billing",
            "kind": "confidential",
            "grant_types": "client_credentials",
            "idempotency_key": "k-1",
        },
    )
    assert made.status_code == 200, made.text
    assert made.headers["cache-control"] == "no-store"
    secret = made.text.split('<code class="secret">', 1)[1].split("<", 1)[0]
    assert len(secret) > 20
    assert secret not in (await browser.get(base + "/clients")).text
    # The same form submitted twice makes one client (its Idempotency-Key).
    again = await browser.post(
        base + "/clients",
        data={
            "csrf": token,
            "name": "billing",
            "kind": "confidential",
            "grant_types": "client_credentials",
            "idempotency_key": "k-1",
        },
    )
    assert again.status_code == 200
    assert (await browser.get(base + "/clients")).text.count(">billing<") == 1


async def test_revoke_sessions_and_reset_mfa_go_through_the_api(
    browser: httpx.AsyncClient,
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    client: httpx.AsyncClient,
) -> None:
    app = provision()
    user_id = await signup(client, app.app_id, "sessions@example.com")  # one live session
    await _admin_at(browser, settings, app)
    page = await browser.get(f"/console/apps/{app.app_id}/users/{user_id}")
    assert page.status_code == 200
    assert '<table class="list sessions">' in page.text
    token = csrf_of(page.text)
    base = f"/console/apps/{app.app_id}/users/{user_id}"
    done = await browser.post(base + "/sessions/revoke", data={"csrf": token})
    assert done.status_code == 303
    assert done.headers["location"].endswith("?done=sessions-revoked")
    async with services.router.enter(app) as conn:
        live = await conn.fetchval(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
            uuid.UUID(user_id),
        )
    assert live == 0
    reset = await browser.post(base + "/mfa/reset", data={"csrf": token})
    assert reset.status_code == 303
    audit = await browser.get(f"/console/apps/{app.app_id}/audit", params={"target": user_id})
    assert "admin.user.sessions_revoke" in audit.text
    assert "admin.user.mfa_reset" in audit.text


async def test_a_viewer_sees_no_write_forms_anywhere(
    browser: httpx.AsyncClient, settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    await _admin_at(browser, settings, app, role="viewer")
    base = f"/console/apps/{app.app_id}"
    for path in ("/clients", "/keys", "/settings"):
        page = await browser.get(base + path)
        assert page.status_code == 200, path
        assert 'method="post"' not in page.text.replace(
            'method="post" action="/console/logout"', ""
        ), path
    token = csrf_of((await browser.get(base + "/keys")).text)
    for path, data in (
        ("/keys/rotate", {}),
        ("/clients", {"name": "x"}),
        ("/settings", {"primary_color": "#000000"}),
    ):
        refused = await browser.post(base + path, data={"csrf": token, **data})
        assert refused.status_code == 403, path


@pytest.mark.usefixtures("runners")
async def test_branding_saved_with_the_settings_etag(
    browser: httpx.AsyncClient,
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
) -> None:
    """The save is a configure job run by the operator-role runner (admin-rest)."""
    app = provision()
    await _admin_at(browser, settings, app)
    base = f"/console/apps/{app.app_id}/settings"
    page = await browser.get(base, params={"preview_color": "#00aa55"})
    token = csrf_of(page.text)
    etag = html.unescape(page.text.split('name="etag" value="', 1)[1].split('"', 1)[0])
    assert etag.startswith('"')
    saved = await browser.post(
        base, data={"csrf": token, "etag": etag, "primary_color": "#00aa55", "logo_url": ""}
    )
    assert saved.status_code == 303, saved.text
    shown = await browser.get(saved.headers["location"])
    assert 'value="#00aa55"' in shown.text
    async with services.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT settings->>'primary_color' FROM oneauth.apps WHERE app_id = $1", app.app_id
        )
    assert stored == "#00aa55"
    # The same (now stale) ETag again: the API's 412, shown as a conflict page.
    stale = await browser.post(
        base, data={"csrf": token, "etag": etag, "primary_color": "#112233", "logo_url": ""}
    )
    assert stale.status_code == 409
