"""The admin console in a real headless browser (Debian's Chromium through Playwright).

An operator signs in at the platform app's hosted login page, picks an app among
1,000 with the search box, finds a user, disables them and sees the audit row;
an admin of app A only sees nothing of app B (not in the picker; B's URL typed
by hand is 404; B's user id under A's path is 404). No CSP violation anywhere.

Its own database: 998 of the 1,000 apps are registry rows inserted directly (the
picker reads the registry and the grants only, never an app's schema; real
provisioning of 1,000 schemas would take minutes on two cores), the two apps the
test administers are provisioned for real.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the ``playwright``
Python package; ``playwright install`` is never needed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import ScratchDatabase
from oidc._support import PASSWORD, LiveServer
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.db import ops
from oneauth.platform import bootstrap
from oneauth.settings import Settings

from ._kit import operator

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
FILLER = 998

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is absent (apt-get install chromium)"
)


class Rig:
    def __init__(self, settings: Settings, server: LiveServer, a: AppRecord, b: AppRecord) -> None:
        self.settings = settings
        self.server = server
        self.a = a
        self.b = b


@pytest.fixture(scope="module")
def rig(make_database: Callable[[str], ScratchDatabase]) -> Iterator[Rig]:
    db = make_database("console")
    migrate_all(db.dsn)
    made: dict[str, Any] = {}

    def make(base_url: str) -> Any:
        port = int(base_url.rsplit(":", 1)[1])
        settings = db.settings(public_url=base_url, port=port, pool_min_size=1, pool_max_size=4)
        with ops.connect(settings.operator_url) as conn:
            bootstrap.init(conn, settings)  # the console's redirect URI at this URL
            made["a"] = lifecycle.provision(conn, settings, "acme-shop", "Acme Shop").app
            made["b"] = lifecycle.provision(conn, settings, "bolt-forum", "Bolt Forum").app
            with conn.transaction():
                conn.execute(
                    "INSERT INTO oneauth.apps (app_id, display_name, schema_name, role_name)"
                    " SELECT 'filler-' || lpad(n::text, 4, '0'), 'Filler app ' || n,"
                    "        'app_filler_' || n, 'oneauth_t_filler_role_' || n"
                    " FROM generate_series(1, %s) AS n",
                    (FILLER,),
                )
        made["settings"] = settings
        return create_app(settings, configure_logging=False)

    server = LiveServer(make).start()
    try:
        yield Rig(made["settings"], server, made["a"], made["b"])
    finally:
        server.stop()


def _signup(base: str, app_id: str, email: str) -> str:
    response = httpx.post(
        f"{base}/apps/{app_id}/v1/signup", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 201, response.text
    sub: str = response.json()["user"]["id"]
    return sub


def test_sign_in_pick_find_disable_and_audit_in_chromium(rig: Rig) -> None:
    base = rig.server.base_url
    target = _signup(base, rig.a.app_id, "grace@example.com")
    _signup(base, rig.a.app_id, "linus@example.com")
    b_user = _signup(base, rig.b.app_id, "bolt-user@example.com")
    root = operator(rig.settings, (None, "admin"))
    only_a = operator(rig.settings, (rig.a.app_id, "admin"))

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = chromium.new_context()
            page = context.new_page()
            page.set_default_timeout(15_000)
            messages: list[str] = []
            page.on("console", lambda message: messages.append(message.text))

            # Sign in: /console sends the browser to the platform's hosted login page.
            page.goto(f"{base}/console/")
            expect(page).to_have_url(re.compile(r"/platform/"))
            page.fill("input[name=email]", root)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{base}/console/")
            expect(page.locator("header.top .operator")).to_have_text(root)

            # Pick an app among 1,000: the first page lists 50, the search finds it.
            assert page.locator("table.apps tbody tr").count() == 50
            expect(page.locator("a[rel=next]")).to_be_visible()
            page.fill("input[name=q]", "Acme")
            page.click("form.search button")
            rows = page.locator("table.apps tbody tr")
            expect(rows).to_have_count(1)
            page.click("text=Acme Shop")
            expect(page.locator(".banner-id")).to_have_text(rig.a.app_id)
            expect(page.locator(".banner-name")).to_have_text("Acme Shop")

            # Find a user by email prefix and disable them.
            page.click("nav.tabs >> text=Users")
            page.fill("input[name=email]", "gra")
            page.click("form.search button")
            expect(page.locator("table.users tbody tr")).to_have_count(1)
            page.click("text=grace@example.com")
            expect(page.locator(".banner-id")).to_have_text(rig.a.app_id)
            page.click("button.danger")
            expect(page.locator(".notice")).to_contain_text("disabled")
            expect(page.locator("button:has-text('Enable')")).to_be_visible()

            # The audit row, with the operator as the actor.
            page.click("nav.tabs >> text=Audit log")
            page.fill("input[name=event]", "admin.user.disable")
            page.click("form.filters button")
            audit = page.locator("table.audit tbody tr")
            expect(audit.first).to_contain_text("admin.user.disable")
            expect(audit.first).to_contain_text(target)
            assert page.locator("table.audit tbody tr").count() == 1

            # Recent apps: the picker remembers Acme Shop.
            page.goto(f"{base}/console/")
            expect(page.locator(".recent-apps")).to_contain_text("Acme Shop")

            # Signing out ends the session.
            page.click("text=Sign out")
            page.goto(f"{base}/console/")
            expect(page).to_have_url(re.compile(r"/platform/"))

            # An admin of A only: B is nowhere, and typing B's URLs gets 404.
            page.fill("input[name=email]", only_a)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{base}/console/")
            expect(page.locator("table.apps tbody tr")).to_have_count(1)
            expect(page.locator("table.apps")).to_contain_text(rig.a.app_id)
            assert rig.b.app_id not in page.content()
            page.fill("input[name=q]", "Bolt")
            page.click("form.search button")
            expect(page.locator(".empty")).to_be_visible()
            for path in (f"/console/apps/{rig.b.app_id}", f"/console/apps/{rig.b.app_id}/users"):
                answer = page.goto(base + path)
                assert answer is not None
                assert answer.status == 404
                assert "bolt-user@example.com" not in page.content()
            answer = page.goto(f"{base}/console/apps/{rig.a.app_id}/users/{b_user}")
            assert answer is not None
            assert answer.status == 404
            answer = page.goto(f"{base}/console/apps/{rig.a.app_id}/users")
            assert answer is not None
            assert answer.status == 200
            assert "grace@example.com" in page.content()
            assert "bolt-user@example.com" not in page.content()

            violations = [m for m in messages if "Content Security Policy" in m]
            assert violations == []
        finally:
            chromium.close()
