"""The hosted pages of the email flows: CSRF, CSP, no-store, 303, cookies bound to the app."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services

from .conftest import NEW_PASSWORD, code_in, login, query, signup, token_in, unique_email

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


def assert_page_headers(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["cache-control"] == "no-store"


async def test_reset_through_pages_by_code_and_by_link(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(name="Pages App")
    base = f"/apps/{app.app_id}"
    addr = unique_email()
    await signup(client, app, addr)
    page = await client.get(f"{base}/recover")
    assert page.status_code == 200
    assert_page_headers(page)
    assert "Pages App" in page.text
    # No CSRF token: refused.
    r = await client.post(f"{base}/recover", data={"email": addr})
    assert r.status_code == 403
    r = await client.post(f"{base}/recover", data={"email": addr, "csrf": csrf_of(page)})
    assert r.status_code == 200
    assert f"oneauth_mailflow_{app.app_id}" in r.headers["set-cookie"]
    assert f"Path=/apps/{app.app_id}" in r.headers["set-cookie"]
    await deliver(app)
    mail = mailbox.to(addr)[-1]
    r = await client.post(
        f"{base}/reset",
        data={"code": code_in(mail.text), "new_password": NEW_PASSWORD, "csrf": csrf_of(r)},
    )
    assert r.status_code == 200, r.text
    assert "Password changed" in r.text
    assert (await login(client, app, addr, NEW_PASSWORD)).status_code == 200

    # Again by link: GET shows a form, POST uses the token.
    page = await client.get(f"{base}/recover")
    await client.post(f"{base}/recover", data={"email": addr, "csrf": csrf_of(page)})
    await deliver(app)
    token = token_in(mailbox.to(addr)[-1].text)
    landing = await client.get(f"{base}/reset", params={"token": token})
    assert landing.status_code == 200
    assert_page_headers(landing)
    r = await client.post(
        f"{base}/reset",
        data={
            "token": token,
            "new_password": "yet another fine passphrase",
            "csrf": csrf_of(landing),
        },
    )
    assert "Password changed" in r.text
    again = await client.post(
        f"{base}/reset",
        data={"token": token, "new_password": "and one more passphrase", "csrf": csrf_of(landing)},
    )
    assert again.status_code == 400  # single use
    assert (await login(client, app, addr, "yet another fine passphrase")).status_code == 200


async def test_verify_page(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"require_verified_email": True})
    addr = unique_email()
    await signup(client, app, addr)
    await deliver(app)
    token = token_in(mailbox.to(addr)[-1].text)
    landing = await client.get(f"/apps/{app.app_id}/verify", params={"token": token})
    assert (await login(client, app, addr)).status_code == 403  # GET changed nothing
    r = await client.post(
        f"/apps/{app.app_id}/verify", data={"token": token, "csrf": csrf_of(landing)}
    )
    assert r.status_code == 200
    assert "confirmed" in r.text
    # This browser did not sign up (the API did): the password set before the
    # first proof no longer works and the page offers to choose one (P7).
    assert "Choose a password" in r.text
    assert f"/apps/{app.app_id}/recover" in r.text
    assert (await login(client, app, addr)).status_code == 401


async def test_passwordless_pages_code_and_link(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"passwordless": True})
    base = f"/apps/{app.app_id}"
    addr = unique_email()
    await signup(client, app, addr)
    page = await client.get(f"{base}/signin/code")
    r = await client.post(f"{base}/signin/code", data={"email": addr, "csrf": csrf_of(page)})
    assert r.status_code == 200
    await deliver(app)
    r = await client.post(
        f"{base}/signin/code",
        data={"code": code_in(mailbox.to(addr)[-1].text), "csrf": csrf_of(r)},
    )
    assert r.status_code == 200, r.text
    assert "Signed in" in r.text
    assert f"oneauth_session_{app.app_id}=" in r.headers["set-cookie"]

    page = await client.get(f"{base}/signin/link")
    await client.post(f"{base}/signin/link", data={"email": addr, "csrf": csrf_of(page)})
    await deliver(app)
    token = token_in(mailbox.to(addr)[-1].text)
    landing = await client.get(f"{base}/signin/link", params={"token": token})
    # Another browser (no flow cookie) cannot use the link.
    async with httpx.AsyncClient(
        transport=client._transport, base_url=str(client.base_url)
    ) as other:
        other_landing = await other.get(f"{base}/signin/link", params={"token": token})
        r = await other.post(
            f"{base}/signin/link", data={"token": token, "csrf": csrf_of(other_landing)}
        )
        assert r.status_code == 400
    r = await client.post(f"{base}/signin/link", data={"token": token, "csrf": csrf_of(landing)})
    assert r.status_code == 200, r.text
    assert "Signed in" in r.text


async def test_passwordless_pages_off_by_default(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    assert (await client.get(f"/apps/{app.app_id}/signin/code")).status_code == 403


async def test_reset_ends_hosted_page_sessions_too(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
    services: Services,
) -> None:
    app = provision(app_settings={"passwordless": True})
    base = f"/apps/{app.app_id}"
    addr = unique_email()
    await signup(client, app, addr)
    page = await client.get(f"{base}/signin/code")
    r = await client.post(f"{base}/signin/code", data={"email": addr, "csrf": csrf_of(page)})
    await deliver(app)
    r = await client.post(
        f"{base}/signin/code", data={"code": code_in(mailbox.to(addr)[-1].text), "csrf": csrf_of(r)}
    )
    assert "Signed in" in r.text
    live = "SELECT count(*) AS n FROM browser_sessions WHERE revoked_at IS NULL"
    assert (await query(services, app, live))[0]["n"] == 1
    await client.post(f"/apps/{app.app_id}/v1/password/reset/request", json={"email": addr})
    await deliver(app)
    r = await client.post(
        f"/apps/{app.app_id}/v1/password/reset",
        json={"token": token_in(mailbox.to(addr)[-1].text), "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 204
    assert (await query(services, app, live))[0]["n"] == 0
