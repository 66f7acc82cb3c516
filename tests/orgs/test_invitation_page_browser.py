"""The hosted invitation flow in headless Chromium (issue 13), mail through real SMTP.

An invitation-only app (``self_signup: false``, verified email required); the
operator invites an address to the org ``acme``. In the browser: the mailed link,
"Create an account" from the invitation (allowed although the app offers no
sign-up), the confirmation link mailed at sign-up (opened in the same browser, so
the password stays, P7), sign in from the invitation, accept: a member. The
service runs under uvicorn with its in-process mail worker sending to an SMTP
server on loopback (aiosmtpd); JavaScript is off (the pages need none).

Needs ``/usr/bin/chromium`` and the ``playwright`` package, like the OIDC browser test.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import expect, sync_playwright
from starlette.applications import Starlette

from conftest import ScratchDatabase, new_app_id
from oidc._support import PASSWORD, LiveServer
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.db import ops
from oneauth.db.naming import quote_ident
from oneauth.db.pool import RoutedConnection
from oneauth.orgs import invitations
from oneauth.orgs import service as orgs
from oneauth.orgs.actor import OPERATOR
from oneauth.secretbox import SecretBox
from oneauth.settings import Settings
from recovery.conftest import SinkHandler, link_in, text_of

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def smtp() -> Iterator[SinkHandler]:
    """An SMTP server on loopback (aiosmtpd, its own thread) that keeps what it gets."""
    handler = SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    yield handler
    controller.stop()


@pytest.fixture(scope="module")
def mailing_op(
    make_database: Callable[[str], ScratchDatabase], smtp: SinkHandler
) -> Iterator[tuple[LiveServer, Settings]]:
    """The service under uvicorn, mailing through SMTP with its in-process worker, on a
    database of its own: the worker sweeps every app of its database, and the other
    tests' apps have mail queued that no worker sent (tests drive delivery)."""
    db = make_database("invite")
    migrate_all(db.dsn)
    made: list[Settings] = []

    def make(base_url: str) -> Starlette:
        live = db.settings(
            pool_min_size=1,
            pool_max_size=4,
            public_url=base_url,
            email_backend="smtp",
            email_worker="inprocess",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,  # type: ignore[attr-defined]
            smtp_tls="none",
        )
        made.append(live)
        return create_app(live, configure_logging=False)

    server = LiveServer(make).start()
    yield server, made[0]
    server.stop()


def wait_for_mail(handler: SinkHandler, address: str, count: int = 1) -> Any:
    deadline = time.monotonic() + 60  # a loaded machine (the full suite) is slow
    while time.monotonic() < deadline:
        found = handler.to(address)
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.05)
    raise AssertionError(f"no mail number {count} to {address}: {handler.envelopes}")


async def _in_app(settings: Settings, app: AppRecord, work: Callable[..., Any]) -> Any:
    """``work(conn)`` in the app's context on an operator connection (as the CLI runs)."""
    conn = await asyncpg.connect(settings.operator_url, connection_class=RoutedConnection)
    conn.oneauth_entered["app"] = app  # as the router and the CLI do (webhooks.app_of)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT set_config('role', $1, true), set_config('search_path', $2, true),"
                " set_config('oneauth.app_id', $3, true)",
                app.names.role,
                quote_ident(app.names.schema),
                app.app_id,
            )
            return await work(conn)
    finally:
        await conn.close()


def test_invited_sign_up_confirm_and_join_in_chromium(
    mailing_op: tuple[LiveServer, Settings], smtp: SinkHandler
) -> None:
    server, live = mailing_op
    with ops.connect(live.operator_url) as conn:
        app = lifecycle.provision(
            conn,
            live,
            new_app_id("inv"),
            "Invite Shop",
            app_settings={"self_signup": False, "require_verified_email": True},
        ).app
    guest = "invitee@example.com"

    async def setup(conn: asyncpg.Connection) -> str:
        acme = await orgs.create(conn, name="Acme", slug="acme", actor=OPERATOR)
        await orgs.update(
            conn,
            acme.id,
            branding={"display_name": "Acme Corp", "logo_url": "https://cdn.example.com/a.png"},
            actor=OPERATOR,
        )
        sender = invitations.OutboxSender(live, app, SecretBox.from_config(live.master_key))
        await invitations.invite(sender, conn, acme.id, guest, invited_by=OPERATOR)
        return acme.id

    org_id = asyncio.run(_in_app(live, app, setup))
    link = link_in(text_of(wait_for_mail(smtp, guest)))
    assert link.startswith(f"{server.base_url}/apps/{app.app_id}/invitations/accept?token=")

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = chromium.new_context(java_script_enabled=False)
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))

            # The mailed link: the org inside the app's branding, nothing used up yet.
            page.goto(link)
            expect(page).to_have_title("Join Acme Corp · Invite Shop")
            main = page.inner_text("main")
            assert "Invite Shop" in main
            assert "Acme Corp" in main
            assert "i***@example.com" in main
            assert page.locator(".org img.logo").get_attribute("src") == (
                "https://cdn.example.com/a.png"
            )
            # An invitation-only app: the invitee registers from the invitation.
            page.get_by_role("link", name="Create an account").click()
            expect(page).to_have_title(re.compile("Create account"))
            page.get_by_label("Email").fill(guest)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Create account").click()
            expect(page.get_by_role("status")).to_contain_text("we sent a link to confirm it")

            # The confirmation mailed at sign-up, opened in this browser: GET shows a
            # button, the POST confirms; the sign-up's password stays (P7).
            page.goto(link_in(text_of(wait_for_mail(smtp, guest, 2))))
            page.get_by_role("button", name="Confirm").click()
            expect(page.get_by_role("status")).to_contain_text("Thank you")
            assert "no longer works" not in page.inner_text("main")

            # Back to the invitation: sign in from it, then accept.
            page.goto(link)
            page.get_by_role("link", name="Sign in to accept").click()
            expect(page).to_have_title(re.compile("Sign in"))
            page.get_by_label("Email").fill(guest)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_title("Join Acme Corp · Invite Shop")
            assert f"Signed in as {guest}" in page.inner_text("main")
            page.get_by_role("button", name="Accept and join Acme Corp").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("You joined Acme Corp")
            assert [m for m in console if "Content Security Policy" in m] == []
        finally:
            chromium.close()

    async def member(conn: asyncpg.Connection) -> list[tuple[str, list[str], str]]:
        page, _ = await orgs.members(conn, org_id)
        return [(m.email, m.roles, m.joined_via) for m in page]

    assert asyncio.run(_in_app(live, app, member)) == [(guest, ["member"], "invitation")]
