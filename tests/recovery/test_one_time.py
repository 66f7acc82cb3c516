"""P5: single use, expiry, attempt limits, bound to the password hash and to the request."""

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


async def _reset_mail(
    client: httpx.AsyncClient,
    app: AppRecord,
    addr: str,
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> tuple[str, str, str]:
    flow = (await post(client, app, "/v1/password/reset/request", {"email": addr})).json()[
        "flow_token"
    ]
    await deliver(app)
    text = mailbox.to(addr)[-1].text
    return flow, token_in(text), code_in(text)


async def test_reuse_of_links_and_codes_fails(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"passwordless": True, "require_verified_email": True})
    addr = unique_email()
    await signup(client, app, addr)
    await deliver(app)
    verify = token_in(mailbox.to(addr)[-1].text)
    assert (await post(client, app, "/v1/email/verify", {"token": verify})).status_code == 200
    assert (await post(client, app, "/v1/email/verify", {"token": verify})).status_code == 400
    flow, link, code = await _reset_mail(client, app, addr, mailbox, deliver)
    body = {"token": link, "new_password": NEW_PASSWORD}
    assert (await post(client, app, "/v1/password/reset", body)).status_code == 204
    assert (await post(client, app, "/v1/password/reset", body)).status_code == 400
    # Once a reset worked, the code of the same request is dead as well.
    r = await post(
        client,
        app,
        "/v1/password/reset",
        {"flow_token": flow, "code": code, "new_password": "another passphrase 99"},
    )
    assert r.status_code == 400
    start = await post(client, app, "/v1/passwordless/start", {"email": addr, "method": "code"})
    await deliver(app)
    body = {"code": code_in(mailbox.to(addr)[-1].text), "flow_token": start.json()["flow_token"]}
    assert (await post(client, app, "/v1/passwordless/complete", body)).status_code == 200
    assert (await post(client, app, "/v1/passwordless/complete", body)).status_code == 400


async def test_expired_links_and_codes_fail(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
    services: Services,
) -> None:
    app = provision()
    addr = unique_email()
    await signup(client, app, addr)
    flow, link, code = await _reset_mail(client, app, addr, mailbox, deliver)
    # The code expires first (10 minutes) while the link still works (30 minutes).
    async with services.router.enter(app) as conn:
        await conn.execute(
            "UPDATE one_time_tokens SET code_expires_at = now() - interval '1 second'"
            " WHERE purpose = 'reset_password'"
        )
    r = await post(
        client,
        app,
        "/v1/password/reset",
        {"flow_token": flow, "code": code, "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 400
    async with services.router.enter(app) as conn:
        await conn.execute(
            "UPDATE one_time_tokens SET expires_at = now() - interval '1 second'"
            " WHERE purpose = 'reset_password'"
        )
    r = await post(client, app, "/v1/password/reset", {"token": link, "new_password": NEW_PASSWORD})
    assert r.status_code == 400
    assert (await login(client, app, addr)).status_code == 200


async def test_lifetimes_are_within_limits(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision(app_settings={"passwordless": True})
    addr = unique_email()
    await signup(client, app, addr)
    await post(client, app, "/v1/password/reset/request", {"email": addr})
    await post(client, app, "/v1/passwordless/start", {"email": addr, "method": "code"})
    await post(client, app, "/v1/passwordless/start", {"email": addr, "method": "link"})
    rows = await query(
        services,
        app,
        "SELECT purpose, extract(epoch FROM expires_at - created_at) AS link,"
        " extract(epoch FROM code_expires_at - created_at) AS code,"
        " token_hash, code_hash FROM one_time_tokens",
    )
    limits = {"reset_password": 1800, "email_otp": 600, "magic_link": 600, "verify_email": 86400}
    for row in rows:
        assert float(row["link"]) <= limits[row["purpose"]] + 1
        if row["code"] is not None:
            assert float(row["code"]) <= 601
        # Stored as 32-byte MACs only.
        for value in (row["token_hash"], row["code_hash"]):
            assert value is None or len(value) == 32


async def test_too_many_code_attempts_lock_that_code(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"passwordless": True})
    addr = unique_email()
    await signup(client, app, addr)
    start = await post(client, app, "/v1/passwordless/start", {"email": addr, "method": "code"})
    flow = start.json()["flow_token"]
    await deliver(app)
    code = code_in(mailbox.to(addr)[-1].text)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        r = await post(
            client, app, "/v1/passwordless/complete", {"code": wrong, "flow_token": flow}
        )
        assert r.status_code == 400
    r = await post(client, app, "/v1/passwordless/complete", {"code": code, "flow_token": flow})
    assert r.status_code == 400  # the right code no longer works: locked


async def test_reset_issued_before_a_password_change_no_longer_works(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision()
    addr = unique_email()
    access = (await signup(client, app, addr)).json()["access_token"]
    _, link, _ = await _reset_mail(client, app, addr, mailbox, deliver)
    r = await client.post(
        f"/apps/{app.app_id}/v1/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"authorization": f"Bearer {access}"},
    )
    assert r.status_code == 204
    r = await post(
        client, app, "/v1/password/reset", {"token": link, "new_password": "third passphrase 123"}
    )
    assert r.status_code == 400
    assert (await login(client, app, addr, NEW_PASSWORD)).status_code == 200


async def test_codes_work_only_with_their_flow(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision()
    addr = unique_email()
    await signup(client, app, addr)
    _, _, code1 = await _reset_mail(client, app, addr, mailbox, deliver)
    flow2, _, _ = await _reset_mail(client, app, addr, mailbox, deliver)
    r = await post(
        client,
        app,
        "/v1/password/reset",
        {"flow_token": flow2, "code": code1, "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 400


async def test_redirect_uri_must_be_in_link_urls_exactly(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
    services: Services,
) -> None:
    app = provision(app_settings={"link_urls": ["https://spa.example/auth/callback"]})
    addr = unique_email()
    await signup(client, app, addr)
    async with services.router.enter(app) as conn:
        # A client's redirect URI is no link destination (P6), registered or not.
        await conn.execute("UPDATE clients SET redirect_uris = ARRAY['https://rp.example/cb']")
    for bad in (
        "https://evil.example/",
        "https://spa.example/auth/callback/",
        "https://spa.example",
        "https://rp.example/cb",
    ):
        r = await post(
            client, app, "/v1/password/reset/request", {"email": addr, "redirect_uri": bad}
        )
        assert r.status_code == 422
    r = await post(
        client,
        app,
        "/v1/password/reset/request",
        {"email": addr, "redirect_uri": "https://spa.example/auth/callback"},
    )
    assert r.status_code == 202
    await deliver(app)
    link = mailbox.to(addr)[-1].text
    assert "https://spa.example/auth/callback?token=" in link
