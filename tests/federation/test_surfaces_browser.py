"""Federation end to end in headless Chromium (issue 14): the hosted login page of app A,
its "Continue with Upstream" button, panva's oidc-provider's own login and consent
pages, back to A's callback, the code at the client; then the account page's "Linked
sign-in" section lists the identity.

oneauth runs under uvicorn (the upstream's redirect must reach it in the browser);
the client's redirect URI never leaves the browser (Playwright answers it). Needs
``/usr/bin/chromium`` and node/npm (the upstream), else skipped.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Route, expect, sync_playwright
from starlette.applications import Starlette

from federation.rig.node_op import Account, UpstreamOP
from federation.test_surfaces import add_provider
from oidc._support import RP, LiveServer, challenge_of, jwt_claims
from oidc._support import register as register_client
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.services import Services
from oneauth.settings import Settings
from test_webauthn_browser import ARGS, CHROMIUM

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


def test_hosted_federated_sign_in_in_chromium(
    live: LiveServer,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
    upstream_op: UpstreamOP,
) -> None:
    base = live.base_url
    live_settings = replace(settings, public_url=base)
    app = provision(name="Federated Shop")
    issuer = f"{base}/apps/{app.app_id}"
    client_id, _ = register_client(settings, app, first_party=True, redirect_uris=(RP,))
    with httpx.Client() as http:
        provider_id = add_provider(live_settings, services, app, upstream_op)
        account = Account.new(name="Chromium User")
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = chromium.new_context().new_page()
                callbacks: list[str] = []

                def answer(route: Route) -> None:
                    callbacks.append(route.request.url)
                    route.fulfill(status=200, content_type="text/plain", body="callback")

                page.route(re.compile(re.escape(RP) + r".*"), answer)
                verifier = secrets.token_urlsafe(48)
                query = {
                    "response_type": "code",
                    "client_id": client_id,
                    "redirect_uri": RP,
                    "scope": "openid email",
                    "state": "st",
                    "nonce": "n",
                    "code_challenge": challenge_of(verifier),
                    "code_challenge_method": "S256",
                }
                url = f"{issuer}/oauth/authorize?{urlencode(query)}"
                page.goto(url)
                expect(page).to_have_title("Sign in · Federated Shop")
                page.click("text=Continue with Upstream")
                page.wait_for_url(lambda u: u.startswith(upstream_op.issuer))
                upstream_op.browser_sign_in(page, account)
                page.wait_for_url(re.compile(re.escape(RP) + r".*"))
                assert len(callbacks) == 1
                assert parse_qs(urlsplit(callbacks[0]).query)["state"] == ["st"]
                code = parse_qs(urlsplit(callbacks[0]).query)["code"][0]
                tokens = http.post(
                    f"{issuer}/oauth/token",
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": RP,
                        "code_verifier": verifier,
                        "client_id": client_id,
                    },
                )
                assert tokens.status_code == 200, tokens.text
                _, claims = jwt_claims(tokens.json()["id_token"])
                assert claims["email"] == account.email

                # The account page of the same browser session: "Linked sign-in".
                page.goto(f"{issuer}/account")
                expect(page.locator("#linked")).to_have_text("Linked sign-in")
                expect(page.locator("section[aria-labelledby=linked]")).to_contain_text("Upstream")
                assert provider_id
            finally:
                chromium.close()
