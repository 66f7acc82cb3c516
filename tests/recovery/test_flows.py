"""Every email flow through the JSON API, delivered by the memory backend."""

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


async def test_signup_sends_verification_and_link_verifies(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(name="Shop & <Co>", app_settings={"require_verified_email": True})
    addr = unique_email()
    r = await signup(client, app, addr)
    assert r.status_code == 202
    assert r.json()["verification_required"] is True
    flow = r.json()["flow_token"]
    assert (await login(client, app, addr)).json()["code"] == "email_not_verified"
    await deliver(app)
    [sent] = mailbox.to(addr)
    assert "Shop & <Co>" in sent.text  # the app's display name, as is in text ...
    assert "Shop &amp; &lt;Co&gt;" in sent.html  # ... and escaped in HTML
    assert sent.message["From"].addresses[0].display_name == "Shop & <Co>"
    # The link with the signup's flow token: the signup's password stays (P7).
    body = {"token": token_in(sent.text), "flow_token": flow}
    r = await post(client, app, "/v1/email/verify", body)
    assert r.status_code == 200, r.text
    assert r.json() == {"email": addr, "email_verified": True, "password_cleared": False}
    r = await login(client, app, addr)
    assert r.status_code == 200
    me = await client.get(
        f"/apps/{app.app_id}/v1/me", headers={"authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.json()["email_verified"] is True


async def test_signup_code_verifies_with_flow_token(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"require_verified_email": True})
    addr = unique_email()
    flow = (await signup(client, app, addr)).json()["flow_token"]
    await deliver(app)
    code = code_in(mailbox.to(addr)[0].text)
    r = await post(client, app, "/v1/email/verify", {"code": code})
    assert r.status_code == 422  # a code alone is never enough
    r = await post(client, app, "/v1/email/verify", {"flow_token": flow, "code": code})
    assert r.status_code == 200, r.text


async def test_signup_with_existing_address_notifies_owner_and_answers_the_same(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"require_verified_email": True})
    addr = unique_email()
    first = await signup(client, app, addr)
    second = await signup(client, app, addr.upper())
    assert first.status_code == second.status_code == 202
    assert first.json().keys() == second.json().keys()
    await deliver(app)
    kinds = sorted(str(m.message["Subject"]) for m in mailbox.to(addr))
    assert len(kinds) == 2
    assert any("tried to sign up" in k for k in kinds)


async def test_verification_resend_only_for_unverified(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"require_verified_email": True})
    addr = unique_email()
    await signup(client, app, addr)
    r = await post(client, app, "/v1/email/verify/request", {"email": addr})
    assert r.status_code == 202
    await deliver(app)
    assert len(mailbox.to(addr)) == 2
    await post(client, app, "/v1/email/verify", {"token": token_in(mailbox.to(addr)[1].text)})
    mailbox.messages.clear()
    r = await post(client, app, "/v1/email/verify/request", {"email": addr})
    assert r.status_code == 202
    await deliver(app)
    assert mailbox.to(addr) == []


async def test_password_reset_by_link_ends_sessions_and_does_not_sign_in(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
    services: Services,
) -> None:
    app = provision()
    addr = unique_email()
    tokens = (await signup(client, app, addr)).json()
    old = (await login(client, app, addr)).json()
    r = await post(client, app, "/v1/password/reset/request", {"email": addr})
    assert r.status_code == 202
    await deliver(app)
    [mail] = [m for m in mailbox.to(addr) if "Reset" in str(m.message["Subject"])]
    link = token_in(mail.text)
    r = await post(client, app, "/v1/password/reset", {"token": link, "new_password": NEW_PASSWORD})
    assert r.status_code == 204
    assert r.content == b""  # no tokens: a reset never signs in (P5, MFA)
    # Every session and refresh family of the user ended (S3).
    for t in (tokens, old):
        me = await client.get(
            f"/apps/{app.app_id}/v1/me", headers={"authorization": f"Bearer {t['access_token']}"}
        )
        assert me.status_code == 401
        r = await client.post(
            f"/apps/{app.app_id}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": t["refresh_token"],
                "client_id": (await client.get(f"/apps/{app.app_id}/v1/app")).json()[
                    "default_client_id"
                ],
            },
        )
        assert r.status_code == 400
    assert (await login(client, app, addr)).status_code == 401
    assert (await login(client, app, addr, NEW_PASSWORD)).status_code == 200
    rows = await query(
        services, app, "SELECT event, outcome FROM audit_log WHERE event = 'password.reset'"
    )
    assert [tuple(r) for r in rows] == [("password.reset", "success")]


async def test_password_reset_by_code(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision()
    addr = unique_email()
    await signup(client, app, addr)
    flow = (await post(client, app, "/v1/password/reset/request", {"email": addr})).json()[
        "flow_token"
    ]
    await deliver(app)
    code = code_in(mailbox.to(addr)[-1].text)
    r = await post(
        client,
        app,
        "/v1/password/reset",
        {"flow_token": flow, "code": code, "new_password": "short"},
    )
    assert r.json()["code"] == "weak_password"  # the code is not used up by a weak password
    r = await post(
        client,
        app,
        "/v1/password/reset",
        {"flow_token": flow, "code": code, "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 204
    assert (await login(client, app, addr, NEW_PASSWORD)).status_code == 200


async def test_magic_link_and_code_sign_in(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"passwordless": True})
    addr = unique_email()
    await signup(client, app, addr)
    start = await post(client, app, "/v1/passwordless/start", {"email": addr, "method": "link"})
    assert start.status_code == 202
    await deliver(app)
    token = token_in(mailbox.to(addr)[-1].text)
    # Bound to the request that asked: the link alone signs nobody in.
    r = await post(client, app, "/v1/passwordless/complete", {"token": token, "flow_token": "x"})
    assert r.json()["code"] == "invalid_link_or_code"
    r = await post(
        client,
        app,
        "/v1/passwordless/complete",
        {"token": token, "flow_token": start.json()["flow_token"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["access_token"]
    start = await post(client, app, "/v1/passwordless/start", {"email": addr, "method": "code"})
    await deliver(app)
    code = code_in(mailbox.to(addr)[-1].text)
    r = await post(
        client,
        app,
        "/v1/passwordless/complete",
        {"code": code, "flow_token": start.json()["flow_token"]},
    )
    assert r.status_code == 200, r.text


async def test_passwordless_is_a_per_app_switch(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    r = await post(
        client, app, "/v1/passwordless/start", {"email": unique_email(), "method": "code"}
    )
    assert r.status_code == 403
    assert r.json()["code"] == "feature_disabled"


async def test_email_change_confirms_new_address_and_tells_the_old(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision()
    old, new = unique_email("old"), unique_email("new")
    access = (await signup(client, app, old)).json()["access_token"]
    auth = {"authorization": f"Bearer {access}"}
    r = await client.post(
        f"/apps/{app.app_id}/v1/email/change",
        json={"new_email": new, "password": "wrong password here"},
        headers=auth,
    )
    assert r.status_code == 401  # re-authentication
    r = await client.post(
        f"/apps/{app.app_id}/v1/email/change",
        json={"new_email": new, "password": PASSWORD},
        headers=auth,
    )
    assert r.status_code == 202, r.text
    await deliver(app)
    [confirm] = mailbox.to(new)
    notices = [m for m in mailbox.to(old) if "change" in str(m.message["Subject"]).lower()]
    assert len(notices) == 1
    assert new not in notices[0].text  # masked
    r = await post(client, app, "/v1/email/change/confirm", {"token": token_in(confirm.text)})
    assert r.status_code == 200, r.text
    assert r.json() == {"email": new, "email_verified": True}
    assert (await login(client, app, new)).status_code == 200
    assert (await login(client, app, old)).status_code == 401
    await deliver(app)
    assert any("was changed" in str(m.message["Subject"]) for m in mailbox.to(old))
