"""The code flow in a real headless browser (Debian's Chromium through Playwright),
with JavaScript switched off: hosted login and consent pages, app branding under
the CSP, cookies per app, a second app's login page, RP-initiated logout.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the ``playwright``
Python package; ``playwright install`` is never needed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect, sync_playwright

from oneauth.apps.models import AppRecord
from oneauth.settings import Settings

from ._rp import RelyingParty
from ._support import PASSWORD, LiveServer, register
from .test_oidc_live import signup

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


def test_code_flow_in_chromium_without_javascript(
    live_op: LiveServer,
    relying_party: tuple[RelyingParty, LiveServer],
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    rp, rp_server = relying_party
    shop = provision(
        name="Browser Shop",
        app_settings={"primary_color": "#b00b1e", "logo_url": "https://cdn.example.com/l.png"},
    )
    forum = provision(name="Browser Forum")
    email = "chromium@example.com"
    names = {}
    subs = {}
    for app in (shop, forum):
        subs[app.app_id] = signup(live_op.base_url, app.app_id, email)
        name = f"b-{app.app_id}"
        client_id, secret = register(
            settings,
            app,
            kind="confidential",
            redirect_uris=(rp.redirect_uri(name),),
            post_logout=(rp.post_logout_uri(name),),
            name="Photo Printer",
        )
        assert secret is not None
        rp.register(name, f"{live_op.base_url}/apps/{app.app_id}", client_id, secret)
        names[app.app_id] = name

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = chromium.new_context(java_script_enabled=False)
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))

            # Shop: the hosted login page, branded, then the consent page.
            page.goto(f"{rp_server.base_url}/login/{names[shop.app_id]}")
            assert page.url.startswith(f"{live_op.base_url}/apps/{shop.app_id}/oauth/authorize")
            assert page.title() == "Sign in · Browser Shop"
            assert "to continue to Photo Printer" in page.inner_text("main")
            button = page.locator("button.primary")
            # The per-app stylesheet applied under CSP style-src 'self' (no inline styles).
            color = button.evaluate("b => getComputedStyle(b).backgroundColor")
            assert color == "rgb(176, 11, 30)"
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill("not the password at all")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_have_text(
                "The email address or password is not right."
            )
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()

            expect(page).to_have_title("Allow access · Browser Shop")
            scopes = page.locator(".scopes code").all_inner_texts()
            assert scopes == ["openid", "email", "profile"]
            page.get_by_role("button", name="Allow").click()

            # Back at the relying party with a validated ID token and UserInfo.
            expect(page).to_have_url(re.compile(re.escape(rp_server.base_url + "/callback/")))
            result = json.loads(page.inner_text("body"))
            assert result["id_token_claims"]["sub"] == subs[shop.app_id]
            assert result["userinfo"]["email"] == email

            cookies = {c["name"]: c for c in context.cookies()}
            session = cookies[f"oneauth_session_{shop.app_id}"]
            assert session["path"] == f"/apps/{shop.app_id}"
            assert session["httpOnly"] is True
            assert session["sameSite"] == "Lax"
            assert session["value"].startswith("obs_")

            # The forum is another app: the shop's sign-in does not count there.
            page.goto(f"{rp_server.base_url}/login/{names[forum.app_id]}")
            assert page.title() == "Sign in · Browser Forum"
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_title("Allow access · Browser Forum")
            page.get_by_role("button", name="Allow").click()
            expect(page).to_have_url(re.compile(re.escape(rp_server.base_url + "/callback/")))
            result = json.loads(page.inner_text("body"))
            assert result["id_token_claims"]["sub"] == subs[forum.app_id]

            # RP-initiated logout at the shop, then the shop asks for a password again.
            page.goto(f"{rp_server.base_url}/logout/{names[shop.app_id]}")
            assert page.inner_text("body") == "signed out at the relying party"
            page.goto(f"{rp_server.base_url}/login/{names[shop.app_id]}")
            expect(page).to_have_title("Sign in · Browser Shop")

            violations = [m for m in console if "Content Security Policy" in m]
            assert violations == []
        finally:
            chromium.close()
