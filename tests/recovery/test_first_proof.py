"""P7, account pre-hijacking: the first proof of a mailbox ends what came before it.

A squatter signs up with the victim's address and a password of their own and
signs in. When the victim first proves the mailbox (verification link, magic
link, email code, reset), the squatter's password stops working and every
session and refresh family started before the proof is dead. Only a proof that
comes with the flow token of the very signup that set the password (one party:
the signup requester who also reads the mailbox) keeps that password and that
signup's session.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services
from oneauth.web import browser_session

from .conftest import NEW_PASSWORD, PASSWORD, code_in, login, post, query, token_in, unique_email

Deliver = Callable[[AppRecord], Any]
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Squatter:
    """What the squatter holds: the signup's tokens and flow, one more login."""

    flow_token: str | None
    access_tokens: list[str]
    refresh_tokens: list[str]
    browser_session: uuid.UUID | None = None


async def _client_id(client: httpx.AsyncClient, app: AppRecord) -> str:
    return str((await client.get(f"/apps/{app.app_id}/v1/app")).json()["default_client_id"])


async def _refresh(client: httpx.AsyncClient, app: AppRecord, token: str) -> httpx.Response:
    return await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": await _client_id(client, app),
        },
    )


async def _me(client: httpx.AsyncClient, app: AppRecord, access: str) -> httpx.Response:
    return await client.get(
        f"/apps/{app.app_id}/v1/me", headers={"authorization": f"Bearer {access}"}
    )


async def _squat(
    client: httpx.AsyncClient, services: Services, app: AppRecord, addr: str
) -> Squatter:
    r = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": addr, "password": PASSWORD}
    )
    assert r.status_code in (201, 202), r.text
    held = Squatter(r.json()["flow_token"], [], [])
    if r.status_code == 201:
        held.access_tokens.append(r.json()["access_token"])
        held.refresh_tokens.append(r.json()["refresh_token"])
        again = (await login(client, app, addr)).json()
        held.access_tokens.append(again["access_token"])
        held.refresh_tokens.append(again["refresh_token"])
        # And a hosted-page (browser) session, as the hosted login would make.
        async with services.router.enter(app) as conn:
            user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", addr)
            _, session = await browser_session.create(
                conn,
                user_id=user_id,
                email=addr,
                amr=["pwd"],
                ttl=3600,
                ip_hash=None,
                user_agent="squatter",
            )
        held.browser_session = session.id
    return held


async def _assert_squatter_locked_out(
    client: httpx.AsyncClient, services: Services, app: AppRecord, addr: str, held: Squatter
) -> None:
    r = await login(client, app, addr)
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "invalid_credentials"
    for access in held.access_tokens:
        assert (await _me(client, app, access)).status_code == 401
    for refresh in held.refresh_tokens:
        r = await _refresh(client, app, refresh)
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_grant"
    rows = await query(
        services,
        app,
        "SELECT u.password_hash, u.email_verified,"
        " (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL"
        "  AND s.created_at < (SELECT min(occurred_at) FROM audit_log"
        "                      WHERE event = 'email.first_proof')),"
        " (SELECT count(*) FROM browser_sessions b WHERE b.user_id = u.id"
        "  AND b.revoked_at IS NULL AND b.id = $2)"
        " FROM users u WHERE u.email = $1",
        addr,
        held.browser_session,
    )
    assert [tuple(r) for r in rows] == [(None, True, 0, 0)]


async def _first_proofs(services: Services, app: AppRecord) -> list[dict[str, Any]]:
    rows = await query(
        services, app, "SELECT details FROM audit_log WHERE event = 'email.first_proof'"
    )
    return [json.loads(r[0]) if isinstance(r[0], str) else dict(r[0]) for r in rows]


# --- how the owner proves the mailbox ------------------------------------------------


async def _by_verify_link(
    client: httpx.AsyncClient, app: AppRecord, addr: str, mailbox: MemoryBackend, deliver: Deliver
) -> str:
    await deliver(app)
    token = token_in(mailbox.to(addr)[0].text)  # the mail the squatter's signup sent
    r = await post(client, app, "/v1/email/verify", {"token": token})
    assert r.status_code == 200, r.text
    return "verify_link"


async def _by_verify_page(
    client: httpx.AsyncClient, app: AppRecord, addr: str, mailbox: MemoryBackend, deliver: Deliver
) -> str:
    await deliver(app)
    token = token_in(mailbox.to(addr)[0].text)
    # The owner's browser (the squatter used the API: no cookies of theirs here).
    landing = await client.get(f"/apps/{app.app_id}/verify", params={"token": token})
    match = _CSRF.search(landing.text)
    assert match, landing.text
    r = await client.post(
        f"/apps/{app.app_id}/verify", data={"token": token, "csrf": match.group(1)}
    )
    assert r.status_code == 200
    return "verify_link"


async def _by_magic_link(
    client: httpx.AsyncClient, app: AppRecord, addr: str, mailbox: MemoryBackend, deliver: Deliver
) -> str:
    start = {"email": addr, "method": "link"}
    flow = (await post(client, app, "/v1/passwordless/start", start)).json()["flow_token"]
    await deliver(app)
    token = token_in(mailbox.to(addr)[-1].text)
    r = await post(client, app, "/v1/passwordless/complete", {"flow_token": flow, "token": token})
    assert r.status_code == 200, r.text
    return "magic_link"


async def _by_email_code(
    client: httpx.AsyncClient, app: AppRecord, addr: str, mailbox: MemoryBackend, deliver: Deliver
) -> str:
    start = {"email": addr, "method": "code"}
    flow = (await post(client, app, "/v1/passwordless/start", start)).json()["flow_token"]
    await deliver(app)
    code = code_in(mailbox.to(addr)[-1].text)
    r = await post(client, app, "/v1/passwordless/complete", {"flow_token": flow, "code": code})
    assert r.status_code == 200, r.text
    return "email_otp"


Proof = Callable[[httpx.AsyncClient, AppRecord, str, MemoryBackend, Deliver], Awaitable[str]]
PROOFS = {
    "verify_link": _by_verify_link,
    "verify_page": _by_verify_page,
    "magic_link": _by_magic_link,
    "email_code": _by_email_code,
}


@pytest.mark.parametrize("require_verified", [False, True], ids=["instant", "require_verified"])
@pytest.mark.parametrize("proof", list(PROOFS))
async def test_first_proof_locks_the_squatter_out(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    mailbox: MemoryBackend,
    deliver: Deliver,
    proof: str,
    require_verified: bool,
) -> None:
    app = provision(app_settings={"passwordless": True, "require_verified_email": require_verified})
    addr = unique_email("victim")
    held = await _squat(client, services, app, addr)
    if not require_verified:
        # Before the proof the squatter is in: every credential works.
        assert (await login(client, app, addr)).status_code == 200
        assert (await _me(client, app, held.access_tokens[0])).status_code == 200
        r = await _refresh(client, app, held.refresh_tokens[0])
        assert r.status_code == 200
        held.refresh_tokens[0] = r.json()["refresh_token"]
    else:
        assert (await login(client, app, addr)).json()["code"] == "email_not_verified"
    method = await PROOFS[proof](client, app, addr, mailbox, deliver)
    await _assert_squatter_locked_out(client, services, app, addr, held)
    [audited] = await _first_proofs(services, app)
    assert audited["method"] == method
    assert audited["password_cleared"] is True
    assert audited["signup_bound"] is False
    # Signup session, second login and the browser session (instant), else none.
    assert audited["sessions_ended"] == (0 if require_verified else 4)
    # The owner takes the account over through a reset.
    r = await post(client, app, "/v1/password/reset/request", {"email": addr})
    await deliver(app)
    body = {"token": token_in(mailbox.to(addr)[-1].text), "new_password": NEW_PASSWORD}
    assert (await post(client, app, "/v1/password/reset", body)).status_code == 204
    assert (await login(client, app, addr, NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize("by", ["code", "link"])
async def test_signup_proving_with_its_own_flow_token_keeps_password_and_session(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    mailbox: MemoryBackend,
    deliver: Deliver,
    by: str,
) -> None:
    app = provision()
    addr = unique_email("owner")
    held = await _squat(client, services, app, addr)  # here: the legitimate owner
    await deliver(app)
    text = mailbox.to(addr)[0].text
    proof = (
        {"flow_token": held.flow_token, "code": code_in(text)}
        if by == "code"
        else {"flow_token": held.flow_token, "token": token_in(text)}
    )
    r = await post(client, app, "/v1/email/verify", proof)
    assert r.status_code == 200, r.text
    assert r.json()["password_cleared"] is False
    assert (await login(client, app, addr)).status_code == 200
    signup_access, later_access = held.access_tokens
    signup_refresh, later_refresh = held.refresh_tokens
    assert (await _me(client, app, signup_access)).json()["email_verified"] is True
    assert (await _refresh(client, app, signup_refresh)).status_code == 200
    # Every other session started before the proof ends.
    assert (await _me(client, app, later_access)).status_code == 401
    assert (await _refresh(client, app, later_refresh)).status_code == 400
    [audited] = await _first_proofs(services, app)
    assert audited["signup_bound"] is True
    assert audited["password_cleared"] is False
    assert audited["sessions_ended"] == 2  # the second login and the browser session


async def test_another_flows_token_is_no_signup_binding(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    mailbox: MemoryBackend,
    deliver: Deliver,
) -> None:
    """A resend's flow token (whoever asked for it) or a wrong one binds nothing."""
    app = provision(app_settings={"require_verified_email": True})
    addr = unique_email("victim")
    held = await _squat(client, services, app, addr)
    resend = await post(client, app, "/v1/email/verify/request", {"email": addr})
    await deliver(app)
    signup_mail, resend_mail = mailbox.to(addr)
    # The owner uses the resent code with the resend's flow token: still the first
    # proof of someone who did not set the password.
    r = await post(
        client,
        app,
        "/v1/email/verify",
        {"flow_token": resend.json()["flow_token"], "code": code_in(resend_mail.text)},
    )
    assert r.status_code == 200
    assert r.json()["password_cleared"] is True
    assert (await login(client, app, addr)).status_code == 401
    # The squatter's signup link now is dead too (retired with the proof).
    r = await post(
        client,
        app,
        "/v1/email/verify",
        {"flow_token": held.flow_token, "token": token_in(signup_mail.text)},
    )
    assert r.status_code == 400


async def test_only_the_first_proof_ends_anything(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    mailbox: MemoryBackend,
    deliver: Deliver,
) -> None:
    app = provision(app_settings={"passwordless": True})
    addr = unique_email()
    held = await _squat(client, services, app, addr)
    await deliver(app)
    verify = {"flow_token": held.flow_token, "code": code_in(mailbox.to(addr)[0].text)}
    assert (await post(client, app, "/v1/email/verify", verify)).status_code == 200
    session = (await login(client, app, addr)).json()
    # Later proofs (a magic link, an email code): password and sessions untouched.
    await _by_magic_link(client, app, addr, mailbox, deliver)
    await _by_email_code(client, app, addr, mailbox, deliver)
    assert (await login(client, app, addr)).status_code == 200
    assert (await _me(client, app, session["access_token"])).status_code == 200
    assert (await _refresh(client, app, session["refresh_token"])).status_code == 200
    assert (await _me(client, app, held.access_tokens[0])).status_code == 200
    assert len(await _first_proofs(services, app)) == 1


async def test_a_proof_in_app_b_does_nothing_in_app_a(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    mailbox: MemoryBackend,
    deliver: Deliver,
) -> None:
    a = provision(name="App A", app_settings={"passwordless": True})
    b = provision(name="App B", app_settings={"passwordless": True})
    addr = unique_email("both")
    held_a = await _squat(client, services, a, addr)
    await _squat(client, services, b, addr)
    await deliver(a)
    mailbox.messages.clear()
    await _by_verify_link(client, b, addr, mailbox, deliver)
    await _by_magic_link(client, b, addr, mailbox, deliver)
    # A: still unverified, the password and every session alive, nothing audited.
    assert (await login(client, a, addr)).status_code == 200
    for access in held_a.access_tokens:
        assert (await _me(client, a, access)).json()["email_verified"] is False
    assert (await _refresh(client, a, held_a.refresh_tokens[0])).status_code == 200
    assert await _first_proofs(services, a) == []
    assert len(await _first_proofs(services, b)) == 1


async def test_concurrent_proofs_are_one_first_proof(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    mailbox: MemoryBackend,
    deliver: Deliver,
) -> None:
    app = provision(app_settings={"passwordless": True})
    addr = unique_email("victim")
    await _squat(client, services, app, addr)
    starts = [
        await post(client, app, "/v1/passwordless/start", {"email": addr, "method": "link"})
        for _ in range(3)
    ]
    await deliver(app)
    mails = mailbox.to(addr)
    verify = token_in(mails[0].text)
    links = [token_in(m.text) for m in mails[1:]]
    results = await asyncio.gather(
        post(client, app, "/v1/email/verify", {"token": verify}),
        *(
            post(
                client,
                app,
                "/v1/passwordless/complete",
                {"flow_token": s.json()["flow_token"], "token": t},
            )
            for s, t in zip(starts, links, strict=True)
        ),
    )
    assert [r.status_code for r in results] == [200] * 4
    [audited] = await _first_proofs(services, app)
    assert audited["sessions_ended"] == 3  # signup, login, browser session
    # The sign-ins that came with (or after) the proof are live; none from before.
    assert (await login(client, app, addr)).status_code == 401
    for r in results[1:]:
        assert (await _me(client, app, r.json()["access_token"])).status_code == 200


async def test_a_sign_in_racing_the_proof_does_not_outlive_it(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    mailbox: MemoryBackend,
    deliver: Deliver,
) -> None:
    """Password sign-ins whose argon2 check runs while the proof commits: each
    either fails or its session is ended by the proof; none stays live."""
    app = provision()
    addr = unique_email("victim")
    await _squat(client, services, app, addr)
    await deliver(app)
    verify = token_in(mailbox.to(addr)[0].text)

    async def prove() -> httpx.Response:
        await asyncio.sleep(0.01)  # the logins have read the password hash by now
        return await post(client, app, "/v1/email/verify", {"token": verify})

    logins = [login(client, app, addr) for _ in range(4)]
    *signed, proved = await asyncio.gather(*logins, prove())
    assert proved.status_code == 200
    for r in signed:
        if r.status_code == 200:
            assert (await _me(client, app, r.json()["access_token"])).status_code == 401
            assert (await _refresh(client, app, r.json()["refresh_token"])).status_code == 400
        else:
            assert r.status_code in (401, 429)
    live = await query(services, app, "SELECT count(*) FROM sessions WHERE revoked_at IS NULL")
    assert live[0][0] == 0
