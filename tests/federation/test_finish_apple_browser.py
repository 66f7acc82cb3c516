"""Apple's form_post in headless Chromium (issue 14, F9): the browser's own SameSite
rules, not a simulation.

oneauth runs under uvicorn at http://127.0.0.1:<port>; the Apple-style stand-in at
http://localhost:<port>: another site, so Chromium sends the stand-in's form POST to
our callback WITHOUT the SameSite=Lax binding cookie. Our re-post page's static
script posts it again from our own origin, the cookie comes along, and the sign-in
ends at the client with a code. Needs ``/usr/bin/chromium``, else skipped.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Request, Route, expect, sync_playwright
from starlette.applications import Starlette

from federation.rig.faults import OMIT, FaultyOP
from oidc._support import RP, LiveServer, challenge_of, jwt_claims
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.services import Services
from oneauth.settings import Settings
from test_webauthn_browser import ARGS, CHROMIUM

from ._finish import apple_register, hosted_app
from .test_finish_apple import apple_account

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is absent (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def live(settings: Settings) -> Iterator[LiveServer]:
    def make(base_url: str) -> Starlette:
        return create_app(replace(settings, public_url=base_url), configure_logging=False)

    server = LiveServer(make).start()
    yield server
    server.stop()


@pytest.fixture
def apple_site() -> Iterator[FaultyOP]:
    """The Apple-style stand-in on another site: http://localhost:<port>."""
    state = FaultyOP()
    server = LiveServer(state.asgi, host="localhost").start()
    state.discovery_overrides["authorization_response_iss_parameter_supported"] = OMIT
    try:
        yield state
    finally:
        server.stop()


def test_apple_form_post_in_chromium_is_re_posted_and_signs_in(
    live: LiveServer,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
    apple_site: FaultyOP,
) -> None:
    live_settings = replace(settings, public_url=live.base_url)
    keep: dict[str, Any] = {}
    hosted = hosted_app(
        live_settings,
        services,
        provision,
        kind="apple",
        issuer=apple_site.issuer,
        register=apple_register(apple_site, keep),
        name="Apple",
        auth_params={"team_id": "pending", "key_id": "pending"},
    )
    issuer = live_settings.issuer_for(hosted.app.app_id)
    callback = f"{issuer}/federation/{hosted.provider_id}/callback"
    account = apple_account()
    verifier = secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": hosted.client_id,
        "redirect_uri": RP,
        "scope": "openid email",
        "state": "st",
        "nonce": "n",
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
    }
    posts: list[tuple[str, str | None]] = []  # (the page it came from, its Cookie header)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = chromium.new_context().new_page()
            arrived: list[str] = []

            def at_client(route: Route) -> None:
                arrived.append(route.request.url)
                route.fulfill(status=200, content_type="text/plain", body="callback")

            def seen(request: Request) -> None:
                if request.method == "POST" and request.url == callback:
                    headers = request.all_headers()
                    posts.append((headers.get("origin", ""), headers.get("cookie")))

            page.on("request", seen)
            page.route(re.compile(re.escape(RP) + r".*"), at_client)
            page.goto(f"{issuer}/oauth/authorize?{urlencode(query)}")
            page.click("text=Continue with Apple")
            page.wait_for_url(lambda u: u.startswith(apple_site.issuer))
            apple_site.browser_sign_in(page, account)
            page.click('button:has-text("Continue")')  # Apple's page posts the answer
            # Our re-post page submits itself while it loads (a navigation replacing
            # a navigation): wait for the client's redirect URI to be reached.
            for _ in range(150):
                if arrived:
                    break
                page.wait_for_timeout(100)
            expect(page.locator("body")).to_have_text("callback")
        finally:
            chromium.close()
    # Two POSTs reached the callback: Apple's (from localhost, no cookie of ours) and
    # our re-post (from our origin, with the binding cookie).
    assert len(posts) == 2, posts
    (apple_origin, apple_cookie), (our_origin, our_cookie) = posts
    assert apple_origin == apple_site.issuer
    assert hosted.cookie not in (apple_cookie or "")
    assert our_origin == live.base_url
    assert hosted.cookie in (our_cookie or "")
    (done,) = arrived
    assert parse_qs(urlsplit(done).query)["state"] == ["st"]
    code = parse_qs(urlsplit(done).query)["code"][0]
    with httpx.Client() as http:
        tokens = http.post(
            f"{issuer}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": RP,
                "code_verifier": verifier,
                "client_id": hosted.client_id,
            },
        )
    assert tokens.status_code == 200, tokens.text
    _, claims = jwt_claims(tokens.json()["id_token"])
    assert claims["email"] == account.email
    assert claims["amr"] == ["fed"]
    assert apple_site.client_secret_verdicts == ["ok"]
