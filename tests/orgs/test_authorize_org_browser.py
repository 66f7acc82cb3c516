"""Issue 13: the organization picker in a real headless browser (Debian's Chromium
through Playwright, JavaScript off): sign in, pick one of two orgs (each branded by
its own settings inside the app's page, under the CSP), consent, and the code at
the relying party is for the org picked.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the ``playwright``
Python package; ``playwright install`` is never needed. The relying party's
origin (``https://rp.example.com``) and the org logo are answered by Playwright's
request routing, so nothing leaves the machine.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Route, expect, sync_playwright
from starlette.applications import Starlette

from oidc._support import (
    PASSWORD,
    RP,
    LiveServer,
    authorize_params,
    challenge_of,
    jwt_claims,
    query,
    register,
    url,
)
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.db import ops
from oneauth.settings import Settings

from ._authz import ORG_SCOPES

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
# A 1x1 PNG for the org's logo.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

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


def make_org(settings: Settings, app: AppRecord, slug: str, sub: str, **branding: Any) -> str:
    org_id = "org_" + secrets.token_urlsafe(16)
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        conn.execute(
            "INSERT INTO organizations (id, slug, name, branding) VALUES (%s, %s, %s, %s::jsonb)",
            (org_id, slug, slug.title(), json.dumps(branding)),
        )
        conn.execute(
            "INSERT INTO org_members (org_id, user_id, joined_via) VALUES (%s, %s, 'operator')",
            (org_id, uuid.UUID(sub)),
        )
    return org_id


def test_org_picker_in_chromium_without_javascript(
    live: LiveServer, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision(name="Picker Shop", app_settings={"primary_color": "#b00b1e"})
    address = f"picker-{uuid.uuid4().hex[:8]}@example.com"
    signed_up = httpx.post(
        f"{live.base_url}/apps/{app.app_id}/v1/signup",
        json={"email": address, "password": PASSWORD},
    )
    assert signed_up.status_code == 201, signed_up.text
    sub = signed_up.json()["user"]["id"]
    make_org(settings, app, "acme", sub, display_name="ACME Widgets", primary_color="#c0ffee")
    globex = make_org(settings, app, "globex", sub, logo_url="https://cdn.example.com/globex.png")
    client_id, _ = register(settings, app, scopes=ORG_SCOPES, name="Photo Printer")
    verifier = secrets.token_urlsafe(48)
    start = url(
        live.base_url,
        f"/apps/{app.app_id}/oauth/authorize",
        authorize_params(client_id, challenge_of(verifier), scope="openid email organization"),
    )

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = chromium.new_context(java_script_enabled=False)
            landed: list[str] = []

            def relying_party(route: Route) -> None:
                landed.append(route.request.url)
                route.fulfill(status=200, content_type="text/plain", body="back at the RP")

            context.route("https://rp.example.com/**", relying_party)
            context.route(
                "https://cdn.example.com/**",
                lambda route: route.fulfill(status=200, content_type="image/png", body=PNG),
            )
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))

            page.goto(start)
            expect(page).to_have_title("Sign in · Picker Shop")
            page.get_by_label("Email").fill(address)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()

            # The picker: the user's two orgs, each branded, inside the app's page.
            expect(page).to_have_title("Choose an organization · Picker Shop")
            assert "Photo Printer asks which organization to use." in page.inner_text("main")
            choices = page.locator("button.org-choice")
            expect(choices).to_have_count(2)
            assert [n.strip() for n in page.locator(".org-name").all_inner_texts()] == [
                "ACME Widgets",
                "Globex",
            ]
            assert page.locator(".org-mark rect").get_attribute("fill") == "#c0ffee"
            logo = page.locator("img.org-logo")
            expect(logo).to_have_attribute("src", "https://cdn.example.com/globex.png")
            assert logo.evaluate("img => img.naturalWidth") == 1  # loaded under img-src https:
            # The app's own stylesheet still brands the page (style-src 'self').
            heading = page.locator("header.brand .app-name")
            expect(heading).to_have_text("Picker Shop")
            page.get_by_role("button", name=re.compile("Globex")).click()

            # A third-party client: consent, which names the organization scope.
            expect(page).to_have_title("Allow access · Picker Shop")
            assert "organization" in page.locator(".scopes code").all_inner_texts()
            page.get_by_role("button", name="Allow").click()
            expect(page).to_have_url(re.compile(re.escape(RP) + r"\?"))
            violations = [m for m in console if "Content Security Policy" in m]
            assert violations == []
        finally:
            chromium.close()

    result = query(landed[-1])
    assert result["state"] == "st-123"
    tokens = httpx.post(
        f"{live.base_url}/apps/{app.app_id}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": RP,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert tokens.status_code == 200, tokens.text
    _, access = jwt_claims(tokens.json()["access_token"])
    assert (access["org_id"], access["org_slug"]) == (globex, "globex")
