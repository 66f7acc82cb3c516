"""Passkeys end to end in headless Chromium with a CDP virtual authenticator
(issue 12): register a passkey, sign in passwordless on the hosted login page,
password + passkey as the second factor, and a passkey of app A refused at app B
in the same browser (both apps on http://localhost: one RP ID, as on one issuer
host in production).

WebAuthn needs a domain, not an IP: the service runs with its public URL on
``http://localhost:<port>`` (a secure context without TLS). The client's
redirect URI (https://rp.example.com/cb) never leaves the browser: Playwright
answers it. Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the
``playwright`` Python package; skipped without Chromium, like the OIDC test.
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
from playwright.sync_api import CDPSession, Route, expect, sync_playwright
from starlette.applications import Starlette

from oidc._support import PASSWORD, RP, LiveServer, challenge_of, jwt_claims, register
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is absent (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def localhost_op(settings: Settings) -> Iterator[LiveServer]:
    """The service under uvicorn, ONEAUTH_PUBLIC_URL = http://localhost:<port>."""

    def make(base_url: str) -> Starlette:
        return create_app(replace(settings, public_url=base_url), configure_logging=False)

    server = LiveServer(make, host="localhost").start()
    yield server
    server.stop()


class Site:
    """One app on the live server: a first-party client and a user with a password."""

    def __init__(
        self, base: str, settings: Settings, app: AppRecord, email: str, http: httpx.Client
    ) -> None:
        self.base = base
        self.app = app
        self.issuer = f"{base}/apps/{app.app_id}"
        self.email = email
        self.http = http
        self.client_id, _ = register(
            settings, app, first_party=True, redirect_uris=(RP,), name="Own web app"
        )
        response = http.post(
            f"{self.issuer}/v1/signup", json={"email": email, "password": PASSWORD}
        )
        if response.status_code == 403:  # mfa=required: enrolment before any token
            assert response.json()["code"] == "mfa_enrollment_required", response.text
            self.sub = self.access_token = ""
            return
        assert response.status_code == 201, response.text
        self.sub = response.json()["user"]["id"]
        self.access_token = response.json()["access_token"]

    def authorize_url(self, **extra: str) -> tuple[str, str]:
        verifier = secrets.token_urlsafe(48)
        query = {
            **extra,
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": RP,
            "scope": "openid email",
            "state": "st",
            "nonce": "n",
            "code_challenge": challenge_of(verifier),
            "code_challenge_method": "S256",
        }
        return f"{self.issuer}/oauth/authorize?{urlencode(query)}", verifier

    def tokens(self, callback_url: str, verifier: str) -> dict[str, Any]:
        code = parse_qs(urlsplit(callback_url).query)["code"][0]
        response = self.http.post(
            f"{self.issuer}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": RP,
                "code_verifier": verifier,
                "client_id": self.client_id,
            },
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def virtual_authenticator(cdp: CDPSession) -> str:
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return str(added["authenticatorId"])


REGISTER = """async ([issuer, token]) => {
  const init = {headers: {authorization: "Bearer " + token}};
  return await window.oneauthPasskeys.register(
    issuer + "/v1/mfa/webauthn/registration/options",
    issuer + "/v1/mfa/webauthn/registration", init, "Chromium");
}"""

SECOND_FACTOR = """async ([issuer, email, password]) => {
  const post = (path, body) => fetch(issuer + path, {method: "POST",
    headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
  const first = await post("/v1/login", {email, password});
  const problem = await first.json();
  if (first.status !== 403) return {step: "login", status: first.status, problem};
  const options = await (await post("/v1/mfa/webauthn/authentication/options",
    {flow_token: problem.flow_token})).json();
  const credential = await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey)});
  const done = await post("/v1/login/mfa", {flow_token: problem.flow_token,
    factor: "webauthn", assertion: credential.toJSON()});
  return {step: "mfa", status: done.status, code: problem.code, factors: problem.factors,
          body: await done.json()};
}"""


def test_passkeys_in_chromium_with_a_virtual_authenticator(
    localhost_op: LiveServer, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    base = localhost_op.base_url
    assert base.startswith("http://localhost:")
    with httpx.Client() as http:
        shop = Site(base, settings, provision(name="Passkey Shop"), "pk@example.com", http)
        forum = Site(base, settings, provision(name="Passkey Forum"), "pk@example.com", http)

        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                context = chromium.new_context()
                page = context.new_page()
                console: list[str] = []
                page.on("console", lambda message: console.append(message.text))
                callbacks: list[str] = []

                def answer(route: Route) -> None:
                    callbacks.append(route.request.url)
                    route.fulfill(status=200, content_type="text/plain", body="callback")

                page.route(re.compile(re.escape(RP) + r".*"), answer)
                cdp = context.new_cdp_session(page)
                authenticator = virtual_authenticator(cdp)

                # 1. Register a passkey at the shop (its hosted page's script, the JSON API).
                url, _ = shop.authorize_url()
                page.goto(url)
                expect(page).to_have_title("Sign in · Passkey Shop")
                factor = page.evaluate(REGISTER, [shop.issuer, shop.access_token])
                assert factor["kind"] == "webauthn"
                assert factor["name"] == "Chromium"
                stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
                assert len(stored["credentials"]) == 1
                credential = stored["credentials"][0]
                assert credential["isResidentCredential"] is True
                assert credential["rpId"] == "localhost"

                # 2. Passwordless at the shop: the login page's passkey button.
                url, verifier = shop.authorize_url()
                page.goto(url)
                page.get_by_role("button", name="Sign in with a passkey", exact=True).click()
                expect(page).to_have_url(re.compile(re.escape(RP)))
                tokens = shop.tokens(callbacks[-1], verifier)
                _, id_claims = jwt_claims(tokens["id_token"])
                assert id_claims["sub"] == shop.sub
                assert set(id_claims["amr"]) >= {"hwk", "user", "mfa"}
                _, access = jwt_claims(tokens["access_token"])
                assert access["acr"] == "urn:oneauth:acr:mfa"

                # 3. The forum shares RP ID localhost, so the browser offers the shop's
                # passkey there; the forum knows no such credential and refuses it.
                url, verifier = forum.authorize_url()
                page.goto(url)
                expect(page).to_have_title("Sign in · Passkey Forum")
                page.get_by_role("button", name="Sign in with a passkey", exact=True).click()
                expect(page.get_by_role("alert")).to_contain_text(
                    "That passkey was not accepted here"
                )
                assert not [c for c in callbacks if forum.client_id in c]
                # The password still works there, and the shop's passkey still at the shop.
                page.get_by_label("Email").fill(forum.email)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in", exact=True).click()
                expect(page).to_have_url(re.compile(re.escape(RP)))
                assert forum.tokens(callbacks[-1], verifier)["access_token"]
                # Signed in at the forum (browser session): its Security page adds a
                # passkey of the forum's own ("Add a passkey").
                page.goto(f"{forum.issuer}/account")
                expect(page).to_have_title("Security · Passkey Forum")
                page.get_by_label("Name (optional)").fill("Forum laptop")
                page.get_by_role("button", name="Add a passkey", exact=True).click()
                expect(page).to_have_url(re.compile(r"/account\?done=passkey_added$"))
                expect(page.get_by_role("status")).to_have_text("Passkey added.")
                expect(page.locator(".items").first).to_contain_text("Forum laptop")
                stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
                assert len(stored["credentials"]) == 2
                # Keep one discoverable credential for the steps below (no account chooser).
                for other in stored["credentials"]:
                    if other["credentialId"] != credential["credentialId"]:
                        cdp.send(
                            "WebAuthn.removeCredential",
                            {
                                "authenticatorId": authenticator,
                                "credentialId": other["credentialId"],
                            },
                        )

                url, verifier = shop.authorize_url(prompt="login")
                page.goto(url)
                page.get_by_role("button", name="Sign in with a passkey", exact=True).click()
                expect(page).to_have_url(re.compile(re.escape(RP)))
                assert shop.tokens(callbacks[-1], verifier)["access_token"]

                # 4. Password, then the passkey as second factor (the JSON API, from a
                # page of the shop's origin).
                page.goto(shop.authorize_url(prompt="login")[0])
                result = page.evaluate(SECOND_FACTOR, [shop.issuer, shop.email, PASSWORD])
                assert result["code"] == "mfa_required", result
                assert "webauthn" in result["factors"]
                assert result["status"] == 200, result
                _, claims = jwt_claims(result["body"]["access_token"])
                assert claims["sub"] == shop.sub
                assert set(claims["amr"]) >= {"pwd", "hwk", "mfa"}

                # 5. The same on the hosted pages: the password form, then the
                # second-factor page's "Use your passkey".
                url, verifier = shop.authorize_url(prompt="login")
                page.goto(url)
                page.get_by_label("Email").fill(shop.email)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in", exact=True).click()
                expect(page).to_have_title("Two-step verification · Passkey Shop")
                page.get_by_role("button", name="Use your passkey", exact=True).click()
                expect(page).to_have_url(re.compile(re.escape(RP)))
                tokens = shop.tokens(callbacks[-1], verifier)
                _, id_claims = jwt_claims(tokens["id_token"])
                assert id_claims["sub"] == shop.sub
                assert set(id_claims["amr"]) >= {"pwd", "hwk", "mfa"}

                # 6. An app that requires a second factor, a user without one: the
                # hosted enrolment page sets up a passkey, and the sign-in goes on.
                strict = Site(
                    base,
                    settings,
                    provision(name="Strict Shop", app_settings={"mfa": "required"}),
                    "strict@example.com",
                    http,
                )
                url, verifier = strict.authorize_url()
                page.goto(url)
                page.get_by_label("Email").fill(strict.email)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in", exact=True).click()
                expect(page).to_have_title("Set up two-step verification · Strict Shop")
                page.get_by_role("button", name="Use a passkey instead", exact=True).click()
                expect(page).to_have_title("Your recovery codes · Strict Shop")
                assert page.locator(".codes li").count() == 10
                page.get_by_role("link", name="Continue").click()
                expect(page).to_have_url(re.compile(re.escape(RP)))
                tokens = strict.tokens(callbacks[-1], verifier)
                _, id_claims = jwt_claims(tokens["id_token"])
                assert set(id_claims["amr"]) >= {"pwd", "hwk", "mfa"}

                violations = [m for m in console if "Content Security Policy" in m]
                assert violations == []
            finally:
                chromium.close()
