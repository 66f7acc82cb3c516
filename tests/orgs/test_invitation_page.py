"""The hosted invitation page, /invitations/accept (issue 13), driven over HTTP.

The GET shows the org and what accepting does and uses nothing up (mail scanners
fetch links); the POST (CSRF) accepts for the signed-in browser. Signed out, the
page offers the hosted sign-in and registration and comes back; an invitation-only
app lets the invitee (and only the invited address) register from it. Wrong
account and unconfirmed address get a page that says what to do, with the invited
address masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from oidc._support import form, forms
from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.orgs import invitations
from oneauth.orgs.actor import OPERATOR
from oneauth.services import Services
from orgs._surfaces import (
    PASSWORD,
    invitation_token,
    members_of,
    org_of,
    person,
    unique_email,
)
from recovery.conftest import link_in, text_of


@pytest.fixture
async def browser(service: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=service)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def link(html: str, text: str) -> str:
    found = re.search(r'<a [^>]*href="([^"]+)"[^>]*>\s*' + re.escape(text), html)
    assert found, html
    return unescape(found.group(1))


async def invite(
    services: Services, mailbox: MemoryBackend, app: AppRecord, guest: str
) -> tuple[str, str]:
    """An org ``acme`` whose operator invites ``guest`` (mailed): (org id, token)."""
    acme = await org_of(services, app, "acme")
    sender = invitations.OutboxSender(services.settings, app, services.box)
    async with services.router.enter(app) as conn:
        await invitations.invite(sender, conn, acme.id, guest, invited_by=OPERATOR)
    return acme.id, await invitation_token(services, mailbox, app, guest)


def page_url(app: AppRecord, token: str) -> str:
    return f"/apps/{app.app_id}/invitations/accept?token={token}"


async def sign_in_from(
    browser: httpx.AsyncClient, page: httpx.Response, email: str
) -> httpx.Response:
    """Follow the page's sign-in link through the hosted login, back to the page."""
    login = await browser.get(link(page.text, "Sign in"), follow_redirects=True)
    assert login.status_code == 200, login.text
    filled = form(login.text)
    return await browser.post(
        filled.action,
        data={**filled.fields, "email": email, "password": PASSWORD},
        follow_redirects=True,
    )


async def open_invitation(services: Services, app: AppRecord, token: str) -> bool:
    from oneauth.identity import one_time

    async with services.router.enter(app) as conn:
        found = await invitations.peek(
            conn, one_time.Macs(services.settings.master_key, app.app_id), token
        )
    return found is not None and found.state == "open"


async def test_the_get_shows_the_org_and_uses_nothing(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    app = provision(name="Shop")
    guest = unique_email("guest")
    _, token = await invite(services, mailbox, app, guest)
    for _ in range(2):  # a mail scanner, then the person
        page = await browser.get(page_url(app, token))
        assert page.status_code == 200, page.text
        assert "Join Acme" in page.text
        assert "Shop" in page.text
        assert f"{guest[0]}***@example.com" in page.text
        assert guest not in page.text
        assert "Sign in to accept" in page.text
        assert "Create an account" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
    assert await open_invitation(services, app, token)
    for bad in ("x" * 43, "short", ""):
        gone = await browser.get(f"/apps/{app.app_id}/invitations/accept", params={"token": bad})
        assert gone.status_code == 400
        assert "invitation_invalid" in gone.text


async def test_sign_in_from_the_page_then_accept(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    app = provision()
    guest = unique_email("guest")
    org_id, token = await invite(services, mailbox, app, guest)
    invitee = await person(client, services, app, guest)
    back = await sign_in_from(browser, await browser.get(page_url(app, token)), guest)
    assert back.status_code == 200, back.text
    assert str(back.url).endswith(page_url(app, token))
    assert f"Signed in as <strong>{guest}</strong>" in back.text
    accept = form(back.text)
    # Without the CSRF token nothing happens.
    refused = await browser.post(accept.action, data={"token": token})
    assert refused.status_code == 403
    assert "csrf" in refused.text
    assert await open_invitation(services, app, token)
    joined = await browser.post(accept.action, data=accept.fields)
    assert joined.status_code == 200, joined.text
    assert "You joined Acme" in joined.text
    assert (await members_of(services, app, org_id))[invitee.id] == ["member"]
    # Used: the link now says so (to the member: they joined).
    again = await browser.get(page_url(app, token))
    assert again.status_code == 200
    assert "You joined Acme" in again.text
    assert not forms(again.text)
    # To anyone else it is just not valid any more.
    stranger = await client.get(page_url(app, token))
    assert stranger.status_code == 400
    assert "invitation_invalid" in stranger.text


async def test_wrong_account_and_unconfirmed_address(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    app = provision()
    guest = unique_email("guest")
    org_id, token = await invite(services, mailbox, app, guest)
    other = await person(client, services, app)
    page = await sign_in_from(browser, await browser.get(page_url(app, token)), other.email)
    assert "this invitation is for another address" in page.text
    assert guest not in page.text  # only the masked address
    assert not forms(page.text)  # nothing to accept
    # A hand-made POST gets the same explanation, and joins nobody.
    accept = await browser.post(
        f"/apps/{app.app_id}/invitations/accept",
        data={"csrf": await _csrf(browser, app), "token": token},
    )
    assert accept.status_code == 403
    assert "another address" in accept.text
    assert other.id not in await members_of(services, app, org_id)

    # The invitee, address not confirmed: told to confirm it first.
    fresh = httpx.AsyncClient(transport=browser._transport, base_url="http://testserver")
    invitee = await person(client, services, app, guest, verified=False)
    page = await sign_in_from(fresh, await fresh.get(page_url(app, token)), guest)
    assert "not confirmed yet" in page.text
    assert "confirmation link" in page.text
    accept = await fresh.post(
        f"/apps/{app.app_id}/invitations/accept",
        data={"csrf": await _csrf(fresh, app), "token": token},
    )
    assert accept.status_code == 403
    assert "not confirmed yet" in accept.text
    assert invitee.id not in await members_of(services, app, org_id)
    assert await open_invitation(services, app, token)


async def _csrf(browser: httpx.AsyncClient, app: AppRecord) -> str:
    """This browser's CSRF token, from a page with a form (every form has the same)."""
    page = await browser.get(f"/apps/{app.app_id}/recover")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return unescape(found.group(1))


async def test_an_invitation_only_app_lets_the_invitee_register(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    app = provision(app_settings={"self_signup": False, "require_verified_email": True})
    guest = unique_email("guest")
    org_id, token = await invite(services, mailbox, app, guest)
    mailbox.messages.clear()
    page = await browser.get(page_url(app, token))
    register = await browser.get(link(page.text, "Create an account"))
    assert register.status_code == 200, register.text
    filled = form(register.text)
    # The invitation is no pass for any other address.
    wrong = await browser.post(
        filled.action, data={**filled.fields, "email": unique_email(), "password": PASSWORD}
    )
    assert wrong.status_code == 403
    assert "another email address" in wrong.text
    made = await browser.post(
        filled.action, data={**filled.fields, "email": guest, "password": PASSWORD}
    )
    assert made.status_code == 200, made.text
    assert "Check your email" in made.text
    # Confirm the address in this browser: the password the sign-up set stays (P7).
    assert services.delivery is not None
    await services.delivery.deliver_app(app)
    verify_link = link_in(text_of(mailbox.to(guest)[-1].message))
    landing = await browser.get(verify_link)
    confirmed = await browser.post(form(landing.text).action, data=form(landing.text).fields)
    assert confirmed.status_code == 200
    assert "Email address confirmed" in confirmed.text
    assert "no longer works" not in confirmed.text
    back = await sign_in_from(browser, await browser.get(page_url(app, token)), guest)
    joined = await browser.post(form(back.text).action, data=form(back.text).fields)
    assert "You joined Acme" in joined.text, joined.text
    assert guest in {m.email for m in await _members(services, app, org_id)}

    # Without an invitation the app still offers no sign-up.
    plain = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": unique_email(), "password": PASSWORD}
    )
    assert plain.status_code == 403
    assert plain.json()["code"] == "signup_disabled"


async def _members(services: Services, app: AppRecord, org_id: str) -> list[Any]:
    from oneauth.orgs import service as orgs

    async with services.router.enter(app) as conn:
        page, _ = await orgs.members(conn, org_id)
    return list(page)


async def test_hosted_sign_up_then_confirming_in_that_browser_keeps_the_password(
    browser: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    """The hosted registration remembers its signup's flow token in this browser, so
    the confirmation link opened here proves both halves (P7) as /v1/signup's client
    does by sending the flow token: the password stays. (It was cleared before.)"""
    app = provision(app_settings={"require_verified_email": True})
    email = unique_email("self")
    login = await browser.get(f"/apps/{app.app_id}/account", follow_redirects=True)
    register = await browser.get(link(login.text, "Create account"))
    filled = form(register.text)
    made = await browser.post(
        filled.action, data={**filled.fields, "email": email, "password": PASSWORD}
    )
    assert "Check your email" in made.text, made.text
    assert services.delivery is not None
    await services.delivery.deliver_app(app)
    landing = await browser.get(link_in(text_of(mailbox.to(email)[-1].message)))
    confirmed = await browser.post(form(landing.text).action, data=form(landing.text).fields)
    assert "Email address confirmed" in confirmed.text
    assert "no longer works" not in confirmed.text
    signed = await browser.post(
        f"/apps/{app.app_id}/v1/login", json={"email": email, "password": PASSWORD}
    )
    assert signed.status_code == 200, signed.text
