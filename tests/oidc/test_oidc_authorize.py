"""The authorization endpoint and the hosted pages (O1, O2, O4, O6, O7, S4, P4)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx
import pytest

from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._support import (
    PASSWORD,
    RP,
    authorize_params,
    exchange,
    form,
    jwt_claims,
    pkce_pair,
    query,
    register,
    sign_in,
    signup,
)
from .conftest import Provider

MakeProvider = Callable[..., Awaitable[Provider]]


def assert_error_page(response: httpx.Response, code: str) -> None:
    """Shown here, never redirected (O1)."""
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert f"<code>{code}</code>" in response.text
    assert_page_headers(response)


def assert_page_headers(response: httpx.Response) -> None:
    """O7: CSP without unsafe-inline/eval, no framing, no caching."""
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "form-action 'self'" in csp
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    html = response.text
    # No inline script; the one script is the app's own passkeys.js (issue 12).
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S | re.I)
    assert html.lower().count("<script") == len(scripts)
    assert all(body == "" for body in scripts)
    for tag in re.findall(r"<script\b[^>]*>", html, re.I):
        assert re.fullmatch(r'<script src="[^"]+/assets/passkeys\.js" defer>', tag), tag
        assert "script-src 'self';" in csp
    assert "<style" not in html.lower()
    assert re.search(r"\sstyle\s*=", html) is None
    assert re.search(r"\son[a-z]+\s*=", html) is None  # no inline event handlers


def assert_redirect_error(
    response: httpx.Response, error: str, issuer: str, *, state: str | None = "st-123"
) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(RP + "?")
    result = query(location)
    assert result["error"] == error
    assert result["iss"] == issuer  # RFC 9207, O4: errors too
    assert result.get("state") == state
    assert "code" not in result
    return result


async def test_discovery_advertises_the_provider(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    issuer = settings.issuer_for(app.app_id)
    for path in (
        f"/apps/{app.app_id}/.well-known/openid-configuration",
        f"/.well-known/oauth-authorization-server/apps/{app.app_id}",
    ):
        doc = (await client.get(path)).json()
        assert doc["issuer"] == issuer
        assert doc["authorization_endpoint"] == f"{issuer}/oauth/authorize"
        assert doc["userinfo_endpoint"] == f"{issuer}/oauth/userinfo"
        assert doc["end_session_endpoint"] == f"{issuer}/oauth/logout"
        assert doc["response_types_supported"] == ["code"]
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["authorization_response_iss_parameter_supported"] is True
        assert "RS256" in doc["id_token_signing_alg_values_supported"]
        assert "implicit" not in doc["grant_types_supported"]
        assert "password" not in doc["grant_types_supported"]


async def test_unknown_client_or_redirect_uri_shows_a_page(
    make_provider: MakeProvider,
    browser: httpx.AsyncClient,
    settings: Settings,
    services: Services,
) -> None:
    p = await make_provider()
    _, challenge = pkce_pair()
    url = f"/apps/{p.app_id}/oauth/authorize"
    good = authorize_params(p.client_id, challenge)
    assert_error_page(
        await browser.get(url, params={**good, "client_id": "cl_nope12345678"}), "invalid_client"
    )
    no_client = {k: v for k, v in good.items() if k != "client_id"}
    assert_error_page(await browser.get(url, params=no_client), "invalid_client")
    no_redirect = {k: v for k, v in good.items() if k != "redirect_uri"}
    assert_error_page(await browser.get(url, params=no_redirect), "invalid_redirect_uri")
    twice = httpx.QueryParams([*good.items(), ("client_id", p.client_id)])
    assert_error_page(await browser.get(url, params=twice), "invalid_client")
    twice = httpx.QueryParams([*good.items(), ("redirect_uri", RP)])
    assert_error_page(await browser.get(url, params=twice), "invalid_redirect_uri")
    # Even an otherwise hopeless request (response_type=token) never redirects.
    evil = {**good, "redirect_uri": "https://evil.example/cb", "response_type": "token"}
    assert_error_page(await browser.get(url, params=evil), "invalid_redirect_uri")


@pytest.mark.parametrize(
    "variant",
    [
        RP + "/",
        RP.replace("rp.example.com", "RP.example.com"),
        RP.upper().replace("HTTPS://", "https://"),
        RP + "?extra=1",
        RP + "#fragment",
        RP + "/..;/",
        "https://rp.example.com/x/..;/cb",
        "https://rp.example.com@evil.example/cb",
        "https://attacker@rp.example.com/cb",
        "https://rp.example.com:8443/cb",
        RP.replace("https://", "http://"),
    ],
)
async def test_redirect_uri_variants_are_refused_without_redirect(
    make_provider: MakeProvider, browser: httpx.AsyncClient, variant: str
) -> None:
    p = await make_provider()
    _, challenge = pkce_pair()
    params = authorize_params(p.client_id, challenge, redirect_uri=variant)
    response = await browser.get(f"/apps/{p.app_id}/oauth/authorize", params=params)
    assert_error_page(response, "invalid_redirect_uri")


async def test_native_loopback_port_may_vary(
    provision: Callable[..., AppRecord],
    settings: Settings,
    browser: httpx.AsyncClient,
) -> None:
    app = provision()
    native, _ = register(settings, app, redirect_uris=("http://127.0.0.1/cb",))
    web, _ = register(
        settings, app, kind="confidential", redirect_uris=("http://127.0.0.1:8080/cb",)
    )
    _, challenge = pkce_pair()
    url = f"/apps/{app.app_id}/oauth/authorize"
    ok = await browser.get(
        url, params=authorize_params(native, challenge, redirect_uri="http://127.0.0.1:49152/cb")
    )
    assert ok.status_code == 200  # the login page
    for uri in ("http://127.0.0.1:8081/cb", "http://localhost:8080/cb"):
        refused = await browser.get(url, params=authorize_params(web, challenge, redirect_uri=uri))
        assert_error_page(refused, "invalid_redirect_uri")


async def test_errors_go_back_with_iss_and_state(
    make_provider: MakeProvider, browser: httpx.AsyncClient, settings: Settings
) -> None:
    p = await make_provider()
    issuer = settings.issuer_for(p.app_id)
    verifier, challenge = pkce_pair()
    url = f"/apps/{p.app_id}/oauth/authorize"

    async def get(**changes: str | None) -> httpx.Response:
        params = {**authorize_params(p.client_id, challenge), **changes}
        return await browser.get(url, params={k: v for k, v in params.items() if v is not None})

    # O6: never the implicit or hybrid flows.
    for response_type in ("token", "id_token", "code id_token", "code token", ""):
        assert_redirect_error(
            await get(response_type=response_type), "unsupported_response_type", issuer
        )
    # O2: PKCE S256 for every client; plain and "no method" (= plain) refused.
    assert_redirect_error(await get(code_challenge=None), "invalid_request", issuer)
    assert_redirect_error(await get(code_challenge_method="plain"), "invalid_request", issuer)
    assert_redirect_error(await get(code_challenge_method=None), "invalid_request", issuer)
    assert_redirect_error(
        await get(code_challenge=None, code_challenge_method=None), "invalid_request", issuer
    )
    assert_redirect_error(await get(code_challenge="too-short"), "invalid_request", issuer)
    # A verifier sent without a challenge (a downgrade attempt) is refused.
    assert_redirect_error(
        await get(code_challenge=None, code_challenge_method=None, code_verifier=verifier),
        "invalid_request",
        issuer,
    )
    # Scopes limited to the client's registration (O5).
    result = assert_redirect_error(await get(scope="openid admin"), "invalid_scope", issuer)
    assert "admin" in result["error_description"]
    assert_redirect_error(await get(scope=None), "invalid_scope", issuer)
    # Request objects, unknown prompts, bad max_age, other response modes.
    assert_redirect_error(await get(request="eyJ.x.y"), "request_not_supported", issuer)
    assert_redirect_error(await get(request_uri="urn:x"), "request_uri_not_supported", issuer)
    assert_redirect_error(await get(prompt="none login"), "invalid_request", issuer)
    assert_redirect_error(await get(prompt="bogus"), "invalid_request", issuer)
    assert_redirect_error(await get(max_age="-1"), "invalid_request", issuer)
    assert_redirect_error(await get(response_mode="fragment"), "invalid_request", issuer)
    assert_redirect_error(
        await get(state=None, prompt="bogus"), "invalid_request", issuer, state=None
    )
    repeated = httpx.QueryParams(
        [*authorize_params(p.client_id, challenge).items(), ("scope", "openid")]
    )
    assert_redirect_error(await browser.get(url, params=repeated), "invalid_request", issuer)
    # POST works like GET (OIDC Core 3.1.2.1).
    posted = await browser.post(
        url, data={**authorize_params(p.client_id, challenge), "response_type": "token"}
    )
    assert_redirect_error(posted, "unsupported_response_type", issuer)


async def test_client_without_code_grant_is_unauthorized(
    provision: Callable[..., AppRecord], settings: Settings, browser: httpx.AsyncClient
) -> None:
    app = provision()
    client_id, _ = register(
        settings, app, kind="confidential", grants=("client_credentials",), scopes=("orders:read",)
    )
    _, challenge = pkce_pair()
    response = await browser.get(
        f"/apps/{app.app_id}/oauth/authorize", params=authorize_params(client_id, challenge)
    )
    # Its redirect URI is registered, so the error may go back to it.
    assert_redirect_error(response, "unauthorized_client", settings.issuer_for(app.app_id))


async def test_login_page_is_safe_and_needs_its_csrf_token(
    make_provider: MakeProvider, browser: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    p = await make_provider()
    _, challenge = pkce_pair()
    page = await browser.get(
        f"/apps/{p.app_id}/oauth/authorize",
        params=authorize_params(p.client_id, challenge, login_hint="hint@example.com"),
    )
    assert page.status_code == 200
    assert_page_headers(page)
    assert "form-action 'self' https://rp.example.com;" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "same-origin"
    login = form(page.text)
    assert login.method == "post"
    assert login.action == f"http://testserver/apps/{p.app_id}/login"
    assert set(login.fields) == {"csrf", "flow", "email", "password"}
    assert login.fields["email"] == "hint@example.com"
    assert f'href="http://testserver/apps/{p.app_id}/recover?flow=' in page.text
    assert "/signin/code" not in page.text  # passwordless is off by default
    csrf_cookie = browser.cookies.get(f"oneauth_csrf_{p.app_id}")
    assert csrf_cookie
    good = {**login.fields, "email": p.email, "password": PASSWORD}

    forged = await browser.post(login.action, data={**good, "csrf": "0" * 64})
    assert forged.status_code == 403
    assert "<code>csrf</code>" in forged.text
    missing = await browser.post(login.action, data={k: v for k, v in good.items() if k != "csrf"})
    assert missing.status_code == 403
    cross_site = await browser.post(
        login.action, data=good, headers={"origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    fetch_cross = await browser.post(
        login.action, data=good, headers={"sec-fetch-site": "cross-site"}
    )
    assert fetch_cross.status_code == 403
    # Without the CSRF cookie (e.g. a cross-site form) the token alone is worthless.
    browser.cookies.delete(f"oneauth_csrf_{p.app_id}")
    no_cookie = await browser.post(login.action, data=good)
    assert no_cookie.status_code == 403
    assert browser.cookies.get(f"oneauth_session_{p.app_id}") is None
    # A sealed flow that was altered is refused.
    browser.cookies.set(f"oneauth_csrf_{p.app_id}", csrf_cookie, path=f"/apps/{p.app_id}")
    altered = await browser.post(login.action, data={**good, "flow": good["flow"][:-4] + "AAAA"})
    assert altered.status_code == 400
    assert "<code>flow_expired</code>" in altered.text

    ok = await browser.post(login.action, data=good, headers={"origin": "http://testserver"})
    assert ok.status_code == 303  # never 307: the password must not be re-posted
    assert ok.headers["location"].startswith(
        f"http://testserver/apps/{p.app_id}/oauth/authorize/continue?flow="
    )
    cookie = ok.headers["set-cookie"]
    assert f"oneauth_session_{p.app_id}=obs_" in cookie
    assert f"Path=/apps/{p.app_id}" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # http://testserver: see web/browser_session.py


async def test_login_errors_reveal_nothing_and_are_audited(
    make_provider: MakeProvider, browser: httpx.AsyncClient, services: Services
) -> None:
    p = await make_provider()
    _, challenge = pkce_pair()
    page = await browser.get(
        f"/apps/{p.app_id}/oauth/authorize", params=authorize_params(p.client_id, challenge)
    )
    login = form(page.text)
    answers = []
    for email, secret in (
        (p.email, "wrong password entirely"),
        ("nobody@example.com", "wrong password entirely"),
        ("not an email", "wrong password entirely"),
    ):
        response = await browser.post(
            login.action, data={**login.fields, "email": email, "password": secret}
        )
        # Hidden fields and links carry freshly sealed values; everything else is equal.
        body = re.sub(r'(value="|data-flow="|data-csrf="|flow=)[^"]*"', "", response.text)
        answers.append((response.status_code, body.replace(email, "EMAIL")))
        assert "The email address or password is not right." in response.text
    assert answers[0] == answers[1] == answers[2]  # P4: same status, same page
    async with services.router.app(p.app_id) as conn:
        rows = await conn.fetch(
            "SELECT outcome FROM audit_log WHERE event = 'auth.login'"
            " AND details->>'method' = 'password' ORDER BY id"
        )
    assert [r["outcome"] for r in rows] == ["failure", "failure", "failure"]
    # P3: the pair throttle locks after its allowance, with the same page.
    for _ in range(5):
        response = await browser.post(
            login.action, data={**login.fields, "email": p.email, "password": "still wrong!"}
        )
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert "Too many attempts" in response.text


async def test_session_cookie_is_rotated_at_login(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider(first_party=True)
    await sign_in(browser, p.app_id, p.client_id, p.email)
    first = browser.cookies.get(f"oneauth_session_{p.app_id}")
    assert first
    again = await sign_in(browser, p.app_id, p.client_id, p.email, prompt="login")
    assert again.code
    second = browser.cookies.get(f"oneauth_session_{p.app_id}")
    assert second
    assert second != first
    # The old value no longer signs anyone in.
    browser.cookies.set(f"oneauth_session_{p.app_id}", first, path=f"/apps/{p.app_id}")
    _, challenge = pkce_pair()
    page = await browser.get(
        f"/apps/{p.app_id}/oauth/authorize", params=authorize_params(p.client_id, challenge)
    )
    assert page.status_code == 200
    assert 'name="password"' in page.text


async def test_prompt_and_max_age(
    make_provider: MakeProvider, browser: httpx.AsyncClient, settings: Settings
) -> None:
    p = await make_provider()
    issuer = settings.issuer_for(p.app_id)
    _, challenge = pkce_pair()
    url = f"/apps/{p.app_id}/oauth/authorize"
    # Not signed in: prompt=none answers login_required (OIDC Core 3.1.2.6).
    none = await browser.get(url, params=authorize_params(p.client_id, challenge, prompt="none"))
    assert_redirect_error(none, "login_required", issuer)
    first = await sign_in(browser, p.app_id, p.client_id, p.email)
    assert first.result["iss"] == issuer
    assert first.result["state"] == "st-123"
    # Signed in and consented: prompt=none gives a code at once.
    silent = await browser.get(url, params=authorize_params(p.client_id, challenge, prompt="none"))
    assert silent.status_code == 302
    assert "code" in query(silent.headers["location"])
    # More scope than consented: consent_required under prompt=none.
    wider = authorize_params(
        p.client_id, challenge, scope="openid email offline_access", prompt="none"
    )
    assert_redirect_error(await browser.get(url, params=wider), "consent_required", issuer)
    # prompt=login and max_age=0 show the login page although a session exists ...
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        page = await browser.get(url, params=authorize_params(p.client_id, challenge, **extra))
        assert page.status_code == 200
        assert 'name="password"' in page.text
    # ... and are satisfied by the fresh sign-in, without looping.
    fresh = await sign_in(browser, p.app_id, p.client_id, p.email, max_age="0")
    assert fresh.code
    recent = await browser.get(url, params=authorize_params(p.client_id, challenge, max_age="3600"))
    assert recent.status_code == 302
    # prompt=consent asks again even though consent is remembered.
    page = await browser.get(url, params=authorize_params(p.client_id, challenge, prompt="consent"))
    assert page.status_code == 200
    assert 'value="allow"' in page.text


async def test_consent_is_remembered_and_revocable(
    make_provider: MakeProvider,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    settings: Settings,
) -> None:
    p = await make_provider(name='<script>alert("x")</script> Printer')
    issuer = settings.issuer_for(p.app_id)
    _, challenge = pkce_pair()
    url = f"/apps/{p.app_id}/oauth/authorize"
    # Deny: access_denied goes back with iss and state.
    denied = await sign_in(browser, p.app_id, p.client_id, p.email, consent="deny")
    assert denied.response.status_code == 303
    assert denied.result["error"] == "access_denied"
    assert denied.result["iss"] == issuer
    # The consent page escapes the client's name and lists the scopes.
    page = await browser.get(url, params=authorize_params(p.client_id, challenge))
    assert "&lt;script&gt;" in page.text
    assert "<script>" not in page.text
    assert [m for m in re.findall(r"<code>([^<]+)</code>", page.text)] == [
        "openid",
        "email",
        "profile",
    ]
    assert_page_headers(page)
    granted = await sign_in(browser, p.app_id, p.client_id, p.email)
    tokens = (await exchange(browser, p.app_id, p.client_id, granted.code, granted.verifier)).json()
    # Remembered: the next request goes straight back with a code.
    again = await browser.get(url, params=authorize_params(p.client_id, challenge))
    assert again.status_code == 302
    assert "code" in query(again.headers["location"])

    # Listing and revoking takes a first-party token; a third party's is refused.
    first_party = (
        await client.post(
            f"/apps/{p.app_id}/v1/login", json={"email": p.email, "password": PASSWORD}
        )
    ).json()["access_token"]
    mine = {"authorization": f"Bearer {first_party}"}
    theirs = {"authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get(f"/apps/{p.app_id}/v1/consents", headers=theirs)).status_code == 403
    listed = (await client.get(f"/apps/{p.app_id}/v1/consents", headers=mine)).json()
    assert [c["client_id"] for c in listed["consents"]] == [p.client_id]
    assert listed["consents"][0]["scopes"] == ["email", "openid", "profile"]
    gone = await client.delete(f"/apps/{p.app_id}/v1/consents/{p.client_id}", headers=mine)
    assert gone.status_code == 204
    assert (
        await client.delete(f"/apps/{p.app_id}/v1/consents/{p.client_id}", headers=mine)
    ).status_code == 404
    assert (await client.get(f"/apps/{p.app_id}/v1/consents", headers=mine)).json() == {
        "consents": []
    }
    # Revoking ended the client's sessions: its refresh token is dead ...
    refreshed = await client.post(
        f"/apps/{p.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": p.client_id,
        },
    )
    assert refreshed.status_code == 400
    # ... and the consent page is back.
    page = await browser.get(url, params=authorize_params(p.client_id, challenge))
    assert page.status_code == 200
    assert 'value="allow"' in page.text


async def test_first_party_client_skips_consent_and_pages_are_branded(
    provision: Callable[..., AppRecord],
    settings: Settings,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
) -> None:
    app = provision(
        name="Branded",
        app_settings={
            "primary_color": "#0a7e3d",
            "logo_url": "https://cdn.example.com/logo.png",
        },
    )
    client_id, _ = register(settings, app, first_party=True)
    await signup(client, app.app_id, "own@example.com")
    _, challenge = pkce_pair()
    page = await browser.get(
        f"/apps/{app.app_id}/oauth/authorize", params=authorize_params(client_id, challenge)
    )
    assert '<img class="logo" src="https://cdn.example.com/logo.png"' in page.text
    assert "<title>Sign in · Branded</title>" in page.text
    assert "to continue to" not in page.text  # the app's own client
    css = await client.get(f"/apps/{app.app_id}/assets/style.css")
    assert css.headers["content-type"].startswith("text/css")
    assert css.text.startswith(":root { --brand: #0a7e3d; --brand-text: #ffffff; }")
    flow = await sign_in(browser, app.app_id, client_id, "own@example.com")
    assert flow.code  # no consent page for a first-party client

    hostile = provision(app_settings={"primary_color": "#000;}*{background:url(//evil)}"})
    css = await client.get(f"/apps/{hostile.app_id}/assets/style.css")
    assert "evil" not in css.text
    assert css.text.startswith(":root { --brand: #1f5fbf;")


async def test_nonce_and_auth_time_reach_the_id_token(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider()
    flow = await sign_in(browser, p.app_id, p.client_id, p.email, nonce="n-0S6_WzA2Mj")
    tokens = (await exchange(browser, p.app_id, p.client_id, flow.code, flow.verifier)).json()
    _, claims = jwt_claims(tokens["id_token"])
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    no_nonce = await sign_in(browser, p.app_id, p.client_id, p.email, nonce=None)
    tokens = (
        await exchange(browser, p.app_id, p.client_id, no_nonce.code, no_nonce.verifier)
    ).json()
    _, claims2 = jwt_claims(tokens["id_token"])
    assert "nonce" not in claims2
    assert claims2["auth_time"] == claims["auth_time"]  # the same browser sign-in


async def test_browser_sessions_expire_when_idle(
    make_provider: MakeProvider, browser: httpx.AsyncClient, services: Services
) -> None:
    p = await make_provider()
    await sign_in(browser, p.app_id, p.client_id, p.email)
    _, challenge = pkce_pair()
    params = authorize_params(p.client_id, challenge, prompt="none")
    url = f"/apps/{p.app_id}/oauth/authorize"
    assert "code" in query((await browser.get(url, params=params)).headers["location"])
    async with services.router.app(p.app_id) as conn:
        # Idle longer than the app's refresh_idle_ttl (14 days by default).
        await conn.execute("UPDATE browser_sessions SET last_seen_at = now() - interval '15 days'")
    expired = await browser.get(url, params=params)
    assert query(expired.headers["location"])["error"] == "login_required"


async def test_passwordless_apps_link_to_sign_in_by_code(
    provision: Callable[..., AppRecord], settings: Settings, browser: httpx.AsyncClient
) -> None:
    app = provision(app_settings={"passwordless": True})
    client_id, _ = register(settings, app)
    _, challenge = pkce_pair()
    page = await browser.get(
        f"/apps/{app.app_id}/oauth/authorize", params=authorize_params(client_id, challenge)
    )
    assert f'href="http://testserver/apps/{app.app_id}/signin/code?flow=' in page.text
