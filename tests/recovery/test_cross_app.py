"""B1: a link or code made for app A does nothing at app B, also for the same email."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services

from .conftest import (
    NEW_PASSWORD,
    PASSWORD,
    code_in,
    login,
    post,
    query,
    signup,
    token_in,
    unique_email,
)

SNAPSHOT = (
    "SELECT u.password_hash, u.email, u.email_verified,"
    " (SELECT count(*) FROM sessions WHERE revoked_at IS NULL) AS live_sessions,"
    " (SELECT count(*) FROM one_time_tokens WHERE used_at IS NULL) AS unused,"
    " (SELECT coalesce(sum(attempts), 0) FROM one_time_tokens) AS attempts"
    " FROM users u"
)


async def _pair(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], **settings: Any
) -> tuple[AppRecord, AppRecord, str, dict[str, str]]:
    """Two apps with one signup of the same address each; the signups' flow tokens."""
    a = provision(name="App A", app_settings=settings)
    b = provision(name="App B", app_settings=settings)
    addr = unique_email("both")
    flows = {}
    for app in (a, b):
        r = await signup(client, app, addr)
        assert r.status_code in (201, 202)
        flows[app.app_id] = r.json()["flow_token"]
    return a, b, addr, flows


async def _snap(services: Services, a: AppRecord, b: AppRecord) -> list[Any]:
    return [[tuple(r) for r in await query(services, app, SNAPSHOT)] for app in (a, b)]


async def test_reset_link_and_code_from_a_fail_at_b(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
    services: Services,
) -> None:
    a, b, addr, _ = await _pair(client, provision)
    flow = (await post(client, a, "/v1/password/reset/request", {"email": addr})).json()[
        "flow_token"
    ]
    await deliver(a)
    mail = mailbox.to(addr)[-1]
    assert "App A" in mail.text
    before = await _snap(services, a, b)
    r = await post(
        client,
        b,
        "/v1/password/reset",
        {"token": token_in(mail.text), "new_password": NEW_PASSWORD},
    )
    assert r.json()["code"] == "invalid_link_or_code"
    r = await post(
        client,
        b,
        "/v1/password/reset",
        {"flow_token": flow, "code": code_in(mail.text), "new_password": NEW_PASSWORD},
    )
    assert r.json()["code"] == "invalid_link_or_code"
    assert await _snap(services, a, b) == before  # nothing changed in either app
    assert (await login(client, b, addr, PASSWORD)).status_code == 200
    # ... and the link still works where it belongs.
    r = await post(
        client,
        a,
        "/v1/password/reset",
        {"token": token_in(mail.text), "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 204
    assert (await login(client, b, addr, PASSWORD)).status_code == 200
    assert (await login(client, b, addr, NEW_PASSWORD)).status_code == 401


async def test_magic_link_and_code_from_a_fail_at_b(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
    services: Services,
) -> None:
    a, b, addr, _ = await _pair(client, provision, passwordless=True)
    link_flow = (
        await post(client, a, "/v1/passwordless/start", {"email": addr, "method": "link"})
    ).json()["flow_token"]
    code_flow = (
        await post(client, a, "/v1/passwordless/start", {"email": addr, "method": "code"})
    ).json()["flow_token"]
    await deliver(a)
    link_mail, code_mail = mailbox.to(addr)[-2:]
    before = await _snap(services, a, b)
    r = await post(
        client,
        b,
        "/v1/passwordless/complete",
        {"token": token_in(link_mail.text), "flow_token": link_flow},
    )
    assert r.json()["code"] == "invalid_link_or_code"
    r = await post(
        client,
        b,
        "/v1/passwordless/complete",
        {"code": code_in(code_mail.text), "flow_token": code_flow},
    )
    assert r.json()["code"] == "invalid_link_or_code"
    assert await _snap(services, a, b) == before
    r = await post(
        client,
        a,
        "/v1/passwordless/complete",
        {"code": code_in(code_mail.text), "flow_token": code_flow},
    )
    assert r.status_code == 200
    # Tokens made at A are A's: B's endpoints refuse them.
    me = await client.get(
        f"/apps/{b.app_id}/v1/me", headers={"authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.status_code == 401


async def test_verification_and_email_change_from_a_fail_at_b(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
    services: Services,
) -> None:
    a, b, addr, flows = await _pair(client, provision, require_verified_email=True)
    await deliver(a)
    [verify_a] = mailbox.to(addr)
    before = await _snap(services, a, b)
    for flow in (None, flows[b.app_id]):
        body = {"token": token_in(verify_a.text), "flow_token": flow}
        r = await post(client, b, "/v1/email/verify", body)
        assert r.json()["code"] == "invalid_link_or_code"
    assert await _snap(services, a, b) == before
    # With A's signup flow token: the signup's password stays (P7).
    body = {"token": token_in(verify_a.text), "flow_token": flows[a.app_id]}
    assert (await post(client, a, "/v1/email/verify", body)).status_code == 200
    access = (await login(client, a, addr)).json()["access_token"]
    new = unique_email("moved")
    r = await client.post(
        f"/apps/{a.app_id}/v1/email/change",
        json={"new_email": new, "password": PASSWORD},
        headers={"authorization": f"Bearer {access}"},
    )
    assert r.status_code == 202
    await deliver(a)
    [confirm] = mailbox.to(new)
    before = await _snap(services, a, b)
    r = await post(client, b, "/v1/email/change/confirm", {"token": token_in(confirm.text)})
    assert r.json()["code"] == "invalid_link_or_code"
    assert await _snap(services, a, b) == before
    # An access token of A cannot ask B for an email change either.
    r = await client.post(
        f"/apps/{b.app_id}/v1/email/change",
        json={"new_email": new, "password": PASSWORD},
        headers={"authorization": f"Bearer {access}"},
    )
    assert r.status_code == 401


async def test_hosted_reset_link_of_a_fails_on_b_pages(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
    services: Services,
) -> None:
    from .test_pages import csrf_of

    a, b, addr, _ = await _pair(client, provision)
    await post(client, a, "/v1/password/reset/request", {"email": addr})
    await deliver(a)
    token = token_in(mailbox.to(addr)[-1].text)
    before = await _snap(services, a, b)
    landing = await client.get(f"/apps/{b.app_id}/reset", params={"token": token})
    r = await client.post(
        f"/apps/{b.app_id}/reset",
        data={"token": token, "new_password": NEW_PASSWORD, "csrf": csrf_of(landing)},
    )
    assert r.status_code == 400
    assert await _snap(services, a, b) == before
