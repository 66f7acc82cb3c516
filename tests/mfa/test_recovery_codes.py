"""Recovery codes (issue 12): single use, concurrent use, regeneration, audit and mail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services

from .conftest import (
    claims_of,
    enrol_totp,
    login,
    mfa_login,
    post,
    signup,
    unique_email,
    user_with_totp,
)


async def _use(client: httpx.AsyncClient, app: AppRecord, email: str, code: str) -> httpx.Response:
    flow = (await login(client, app, email)).json()["flow_token"]
    return await post(
        client,
        app,
        "/v1/login/mfa",
        {"flow_token": flow, "factor": "recovery_code", "code": code},
    )


async def test_a_recovery_code_signs_in_once_is_audited_and_mailed(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision()
    email, _, _, codes = await user_with_totp(client, services, app)
    r = await _use(client, app, email, codes[0].upper().replace("-", " "))  # typed loosely
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    again = await _use(client, app, email, codes[0])
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_code"
    async with services.router.enter(app) as conn:
        audited = await conn.fetch(
            "SELECT details FROM audit_log WHERE event = 'mfa.recovery_code_used'"
        )
        stored = await conn.fetch("SELECT code_hash FROM recovery_codes")
    assert len(audited) == 1
    assert len(stored) == 10
    assert all(codes[0].replace("-", "").encode() not in bytes(r["code_hash"]) for r in stored)
    await deliver(app)
    sent = mailbox.to(email)
    assert any("recovery code" in m.message["Subject"] for m in sent)
    assert any("9 unused recovery codes" in m.text for m in sent)


async def test_concurrent_use_of_one_recovery_code_one_wins(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, _, _, codes = await user_with_totp(client, services, app)
    flows = [(await login(client, app, email)).json()["flow_token"] for _ in range(3)]
    results = await asyncio.gather(
        *(
            post(
                client,
                app,
                "/v1/login/mfa",
                {"flow_token": f, "factor": "recovery_code", "code": codes[1]},
            )
            for f in flows
        )
    )
    assert sorted(r.status_code for r in results) == [200, 400, 400]


async def test_regenerating_invalidates_the_old_set(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, secret, _, old = await user_with_totp(client, services, app)
    tokens = await mfa_login(client, app, email, secret)
    r = await post(client, app, "/v1/mfa/recovery-codes", {}, tokens["access_token"])
    assert r.status_code == 200, r.text
    new = r.json()["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    assert (await _use(client, app, email, old[2])).status_code == 400
    assert (await _use(client, app, email, new[0])).status_code == 200


async def test_regenerating_needs_a_second_factor_sign_in(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email = unique_email()
    tokens = await signup(client, app, email)
    password_only = tokens["access_token"]
    await enrol_totp(client, app, password_only)
    # The password-only session (from before the enrolment) cannot make new codes.
    r = await post(client, app, "/v1/mfa/recovery-codes", {}, password_only)
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_user_authentication"
    assert r.json()["acr_values"] == "urn:oneauth:acr:mfa"
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert 'acr_values="urn:oneauth:acr:mfa"' in challenge
