"""TOTP through the first-party API (issue 12): enrolment, sign-in, replay, drift,
throttling, concurrency, amr/acr. Codes are computed here from the enrolment secret."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pyotp

from oneauth.apps.models import AppRecord
from oneauth.identity import factors
from oneauth.services import Services
from oneauth.strategies import totp as totp_strategy

from .conftest import (
    claims_of,
    clear_throttle,
    code_for,
    forget_last_step,
    login,
    post,
    signup,
    unique_email,
    user_with_totp,
)


async def test_login_without_a_factor_answers_as_before(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email = unique_email()
    await signup(client, app, email)
    r = await login(client, app, email)
    assert r.status_code == 200, r.text
    claims = claims_of(r.json()["access_token"])
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == "urn:oneauth:acr:sfa"


async def test_enrolled_user_needs_the_code_and_gets_mfa_tokens(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, secret, _, codes = await user_with_totp(client, services, app)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    first = await login(client, app, email)
    assert first.status_code == 403
    body = first.json()
    assert body["code"] == "mfa_required"
    assert body["factors"] == ["totp", "recovery_code"]
    assert "access_token" not in body
    r = await post(
        client,
        app,
        "/v1/login/mfa",
        {"flow_token": body["flow_token"], "factor": "totp", "code": code_for(secret)},
    )
    assert r.status_code == 200, r.text
    claims = claims_of(r.json()["access_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == "urn:oneauth:acr:mfa"
    assert "refresh_token" in r.json()
    # The flow is spent: its token completes nothing again.
    again = await post(
        client,
        app,
        "/v1/login/mfa",
        {"flow_token": body["flow_token"], "factor": "totp", "code": code_for(secret, 1)},
    )
    assert again.status_code == 400
    assert again.json()["code"] == "flow_expired"


async def test_wrong_password_never_reaches_the_second_factor(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, _, _, _ = await user_with_totp(client, services, app)
    r = await login(client, app, email, "not the password at all")
    assert r.status_code == 401
    assert "flow_token" not in r.json()


async def test_wrong_code_is_refused_and_the_flow_dies_after_five(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, secret, _, _ = await user_with_totp(client, services, app)
    flow = (await login(client, app, email)).json()["flow_token"]
    good = code_for(secret)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    for _ in range(5):
        await clear_throttle(services, app)  # the per-flow limit, not the user's
        r = await post(
            client, app, "/v1/login/mfa", {"flow_token": flow, "factor": "totp", "code": wrong}
        )
        assert (r.status_code, r.json()["code"]) == (400, "invalid_code"), r.text
    await clear_throttle(services, app)
    dead = await post(
        client, app, "/v1/login/mfa", {"flow_token": flow, "factor": "totp", "code": good}
    )
    assert dead.status_code == 400
    assert dead.json()["code"] == "flow_expired"


async def test_a_code_is_accepted_once(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email = unique_email()
    tokens = await signup(client, app, email)
    started = (await post(client, app, "/v1/mfa/totp", {}, tokens["access_token"])).json()
    secret = started["secret"]
    code = code_for(secret)
    confirmed = await post(
        client,
        app,
        "/v1/mfa/totp/confirm",
        {"factor_id": started["factor_id"], "code": code},
        tokens["access_token"],
    )
    assert confirmed.status_code == 200
    # The enrolment's code cannot sign in (same step: a replay).
    flow = (await login(client, app, email)).json()["flow_token"]
    replay = await post(
        client, app, "/v1/login/mfa", {"flow_token": flow, "factor": "totp", "code": code}
    )
    assert replay.status_code == 400
    assert replay.json()["code"] == "invalid_code"
    # Neither can an earlier step's code once a later one was used.
    if code_for(secret, -1) != code:
        earlier = await post(
            client,
            app,
            "/v1/login/mfa",
            {"flow_token": flow, "factor": "totp", "code": code_for(secret, -1)},
        )
        assert earlier.status_code == 400
    later = await post(
        client,
        app,
        "/v1/login/mfa",
        {"flow_token": flow, "factor": "totp", "code": code_for(secret, 1)},
    )
    assert later.status_code == 200, later.text


async def test_one_step_of_drift_is_accepted_two_are_not(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, secret, _, _ = await user_with_totp(client, services, app)
    for steps, ok in ((-2, False), (2, False), (-1, True), (1, True)):
        await forget_last_step(services, app)
        await clear_throttle(services, app)
        flow = (await login(client, app, email)).json()["flow_token"]
        code = code_for(secret, steps)
        if not ok and code in {code_for(secret, s) for s in (-1, 0, 1)}:
            continue  # a 1-in-a-million collision with an accepted step
        r = await post(
            client, app, "/v1/login/mfa", {"flow_token": flow, "factor": "totp", "code": code}
        )
        assert (r.status_code == 200) is ok, (steps, r.text)


def test_matching_step_window() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = 1_800_000_000.0
    step = totp.timecode(datetime.datetime.fromtimestamp(now, datetime.UTC))
    for offset in (-1, 0, 1):
        code = totp.generate_otp(step + offset)
        assert totp_strategy.matching_step(secret, code, now=now) == step + offset
    for offset in (-2, 2):
        code = totp.generate_otp(step + offset)
        if code not in {totp.generate_otp(step + o) for o in (-1, 0, 1)}:
            assert totp_strategy.matching_step(secret, code, now=now) is None


async def test_second_factor_attempts_are_throttled_per_user(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, secret, _, _ = await user_with_totp(client, services, app)
    good = code_for(secret)
    wrong = f"{(int(good) + 7) % 1_000_000:06d}"
    statuses = []
    for _ in range(4):  # new flows each time: the per-user counter is what stops this
        flow = (await login(client, app, email)).json()["flow_token"]
        for _ in range(2):
            r = await post(
                client, app, "/v1/login/mfa", {"flow_token": flow, "factor": "totp", "code": wrong}
            )
            statuses.append(r.status_code)
    assert statuses[:5] == [400] * 5
    assert 429 in statuses[5:]
    flow = (await login(client, app, email)).json()["flow_token"]
    locked = await post(
        client, app, "/v1/login/mfa", {"flow_token": flow, "factor": "totp", "code": good}
    )
    assert locked.status_code == 429
    assert "retry-after" in locked.headers


async def test_concurrent_double_submit_of_one_code_one_wins(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, secret, _, _ = await user_with_totp(client, services, app)
    code = code_for(secret)
    # One flow submitted twice at once, and two flows (two sign-ins) with one code.
    flow = (await login(client, app, email)).json()["flow_token"]
    body = {"flow_token": flow, "factor": "totp", "code": code}
    same = await asyncio.gather(*(post(client, app, "/v1/login/mfa", body) for _ in range(2)))
    assert sorted(r.status_code for r in same) == [200, 400]
    await forget_last_step(services, app)
    flows = [(await login(client, app, email)).json()["flow_token"] for _ in range(3)]
    code = code_for(secret)
    results = await asyncio.gather(
        *(
            post(client, app, "/v1/login/mfa", {"flow_token": f, "factor": "totp", "code": code})
            for f in flows
        )
    )
    assert sorted(r.status_code for r in results) == [200, 400, 400]


async def test_seed_is_sealed_and_bound_to_its_user(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    _, secret, factor_id, _ = await user_with_totp(client, services, app)
    _, _, other_id, _ = await user_with_totp(client, services, app)
    async with services.router.enter(app) as conn:
        rows = await conn.fetch("SELECT id, secret_sealed FROM mfa_factors WHERE kind = 'totp'")
        sealed = {str(r["id"]): r["secret_sealed"] for r in rows}
        assert secret not in sealed[factor_id]
        # Copy the first user's sealed seed onto the second user's factor: it opens
        # for nobody, so the first user's codes do not work for the second.
        await conn.execute(
            "UPDATE mfa_factors SET secret_sealed = $1 WHERE id = $2::uuid",
            sealed[factor_id],
            other_id,
        )
        owner = await conn.fetchval("SELECT user_id FROM mfa_factors WHERE id = $1::uuid", other_id)
        other = await factors.get(conn, owner, uuid.UUID(other_id))
        assert other is not None
        assert totp_strategy.open_secret(services.box, app.app_id, other) is None


async def test_enrolment_needs_a_valid_code_and_unconfirmed_factors_do_not_count(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email = unique_email()
    tokens = await signup(client, app, email)
    started = (await post(client, app, "/v1/mfa/totp", {}, tokens["access_token"])).json()
    assert started["otpauth_uri"].startswith("otpauth://totp/Test%20App:")
    assert "issuer=Test%20App" in started["otpauth_uri"]
    wrong = f"{(int(code_for(started['secret'])) + 3) % 1_000_000:06d}"
    r = await post(
        client,
        app,
        "/v1/mfa/totp/confirm",
        {"factor_id": started["factor_id"], "code": wrong},
        tokens["access_token"],
    )
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_code"
    # Not confirmed: signing in asks for nothing more.
    assert (await login(client, app, email)).status_code == 200


async def test_totp_is_not_offered_where_the_policy_leaves_it_out(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision(app_settings={"mfa_factors": ["webauthn", "recovery_code"]})
    tokens = await signup(client, app, unique_email())
    r = await post(client, app, "/v1/mfa/totp", {}, tokens["access_token"])
    assert r.status_code == 422


async def test_mfa_off_asks_for_nothing(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    configure: Callable[..., Any],
) -> None:
    app = provision()
    email, _, _, _ = await user_with_totp(client, services, app)
    await configure(app, mfa="off")
    r = await login(client, app, email)
    assert r.status_code == 200
    assert claims_of(r.json()["access_token"])["amr"] == ["pwd"]
