"""Withdrawing consent kills what the client has not exchanged yet (issue 10 item 6, O3).

A code issued under a consent must not turn into tokens after the user took the
consent back, whether it is exchanged later or at that very moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable

import httpx
from starlette.applications import Starlette

from conftest import Isolated
from oneauth import audit
from oneauth.oauth import authorize, consents
from oneauth.oauth.errors import OAuthError
from oneauth.oauth.models import TokenForm
from oneauth.settings import Settings
from test_refresh_races import _wait_for_lock_waiters

from ._support import PASSWORD, RP, exchange, sign_in, signup
from .conftest import Provider

MakeProvider = Callable[..., Awaitable[Provider]]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def first_party_token(client: httpx.AsyncClient, app_id: str, email: str) -> str:
    response = await client.post(
        f"/apps/{app_id}/v1/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_withdrawn_consent_makes_outstanding_codes_unusable(
    make_provider: MakeProvider,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    service: Starlette,
) -> None:
    p = await make_provider("withdraw@example.com")
    pending = await sign_in(browser, p.app_id, p.client_id, p.email)
    # Another user's code for the same client is not theirs to lose.
    await signup(client, p.app_id, "bystander@example.com")
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        bystander = await sign_in(other, p.app_id, p.client_id, "bystander@example.com")

    mine = bearer(await first_party_token(client, p.app_id, p.email))
    gone = await client.delete(f"/apps/{p.app_id}/v1/consents/{p.client_id}", headers=mine)
    assert gone.status_code == 204

    late = await exchange(browser, p.app_id, p.client_id, pending.code, pending.verifier)
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"
    kept = await exchange(browser, p.app_id, p.client_id, bystander.code, bystander.verifier)
    assert kept.status_code == 200, kept.text


async def test_consent_withdrawn_during_an_exchange_ends_what_it_made(
    make_provider: MakeProvider,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    isolated: Isolated,
    settings: Settings,
) -> None:
    """The exchange has consumed the code and made a session, not yet committed,
    when the withdrawal arrives: the withdrawal waits for it and ends that session."""
    p = await make_provider("inflight@example.com")
    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    mine = bearer(await first_party_token(client, p.app_id, p.email))
    form = TokenForm(
        grant_type="authorization_code",
        code=flow.code,
        redirect_uri=RP,
        code_verifier=flow.verifier,
    )
    # The held transaction is on a pool of its own, so the withdrawal request
    # (shared pool) never queues behind it.
    own = isolated.services
    async with own.router.app(p.app_id) as conn:
        rp = await own.clients.get(conn, p.app_id, p.client_id)
        assert rp is not None
        tokens = await authorize.authorization_code_grant(own, p.app, conn, rp, form, audit.SYSTEM)
        assert not isinstance(tokens, OAuthError)
        assert isinstance(tokens.refresh_token, str)
        withdraw = asyncio.create_task(
            client.delete(f"/apps/{p.app_id}/v1/consents/{p.client_id}", headers=mine)
        )
        await _wait_for_lock_waiters(settings.database_url, 1)
        assert not withdraw.done()
    assert (await asyncio.wait_for(withdraw, 10)).status_code == 204

    refreshed = await client.post(
        f"/apps/{p.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "client_id": p.client_id,
        },
    )
    assert refreshed.status_code == 400
    info = await client.get(f"/apps/{p.app_id}/oauth/userinfo", headers=bearer(tokens.access_token))
    assert info.status_code == 401


async def test_consent_withdrawn_while_a_code_is_issued_voids_that_code(
    make_provider: MakeProvider,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    isolated: Isolated,
    settings: Settings,
) -> None:
    """The authorize step has found the consent and stored a code, not yet
    committed, when the withdrawal arrives: the withdrawal waits and voids it."""
    p = await make_provider("issuing@example.com")
    flow = await sign_in(browser, p.app_id, p.client_id, p.email)
    mine = bearer(await first_party_token(client, p.app_id, p.email))
    raw = "oac_" + secrets.token_urlsafe(32)
    async with isolated.services.router.app(p.app_id) as conn:  # a pool of its own
        assert await consents.covers(conn, uuid.UUID(p.sub), p.client_id, ["openid"])
        # What issue_code stores, for the same request as the code we hold.
        await conn.execute(
            "INSERT INTO authorization_codes (code_hash, client_id, user_id, browser_session_id,"
            " redirect_uri, code_challenge, scope, nonce, auth_time, amr, expires_at)"
            " SELECT $2, client_id, user_id, browser_session_id, redirect_uri, code_challenge,"
            " scope, nonce, auth_time, amr, expires_at FROM authorization_codes"
            " WHERE code_hash = $1",
            hashlib.sha256(flow.code.encode()).digest(),
            hashlib.sha256(raw.encode()).digest(),
        )
        withdraw = asyncio.create_task(
            client.delete(f"/apps/{p.app_id}/v1/consents/{p.client_id}", headers=mine)
        )
        await _wait_for_lock_waiters(settings.database_url, 1)
        assert not withdraw.done()
    assert (await asyncio.wait_for(withdraw, 10)).status_code == 204
    for code in (raw, flow.code):
        late = await exchange(browser, p.app_id, p.client_id, code, flow.verifier)
        assert late.status_code == 400
        assert late.json()["error"] == "invalid_grant"
