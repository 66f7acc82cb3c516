"""The rig's upstream sign-in pages work in headless Chromium too (what the
fed-surfaces end-to-end test relies on): oidc-provider's login + consent, the GitHub
stand-in's page, the faulty OP's page. The callback never leaves the browser:
Playwright answers it. Skipped without /usr/bin/chromium, like the other browser tests."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Route, sync_playwright

from federation.rig.faults import FaultyOP
from federation.rig.github import GitHubStandIn
from federation.rig.node_op import Account, UpstreamOP
from federation.rig.protocol import authorize_url, pkce_pair, query

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
CB = "http://127.0.0.1:9/federation/idp_browser/callback"

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is absent (apt-get install chromium)"
)


class Browser:
    """One Chromium for the module; each sign-in in a fresh context (no upstream session)."""

    def __init__(self, chromium: Any) -> None:
        self.chromium = chromium

    def through(self, start: str, sign_in: Callable[[Any], None]) -> dict[str, str]:
        """Open ``start``, sign in, return the callback's query."""
        context = self.chromium.new_context(java_script_enabled=False)
        try:
            page = context.new_page()
            seen: list[str] = []

            def answer(route: Route) -> None:
                seen.append(route.request.url)
                route.fulfill(status=200, content_type="text/plain", body="callback")

            page.route(re.compile(re.escape(CB) + r".*"), answer)
            page.goto(start)
            sign_in(page)
            page.wait_for_url(re.compile(re.escape(CB) + r".*"))
            assert seen
            return query(seen[-1])
        finally:
            context.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield Browser(chromium)
        finally:
            chromium.close()


def test_oidc_provider_pages_in_chromium(browser: Browser, upstream_op: UpstreamOP) -> None:
    client = upstream_op.register_client([CB])
    account = Account.new("browser@upstream.example")
    url = authorize_url(
        upstream_op.authorization_endpoint, client.client_id, CB, challenge=pkce_pair()[1]
    )
    back = browser.through(url, lambda page: upstream_op.browser_sign_in(page, account))
    assert back["state"] == "st-rig"
    assert back["iss"] == upstream_op.issuer
    assert back["code"]


def test_github_and_faulty_pages_in_chromium(
    browser: Browser, github: GitHubStandIn, faulty_op: FaultyOP
) -> None:
    app = github.register_app(CB)
    user = github.add_user("browser@users.example")
    start = f"{github.authorize_url}?" + urlencode(
        {"client_id": app.client_id, "redirect_uri": CB, "state": "gh", "scope": "user:email"}
    )
    back = browser.through(start, lambda page: github.browser_sign_in(page, user))
    assert back["state"] == "gh"
    assert back["code"]
    client = faulty_op.register_client([CB])
    account = Account.new()
    url = authorize_url(
        faulty_op.authorization_endpoint, client.client_id, CB, challenge=pkce_pair()[1]
    )
    back = browser.through(url, lambda page: faulty_op.browser_sign_in(page, account))
    assert back["iss"] == faulty_op.issuer
    assert back["code"]
