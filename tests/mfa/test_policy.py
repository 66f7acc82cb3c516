"""MFA policy (issue 12): required means required, whatever the endpoint order;
enrolment flows; passwordless, reset and refresh; self-service; other apps."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import PolicyError, parse
from oneauth.db import ops
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services
from oneauth.settings import Settings
from test_apps_configure import cli

from .conftest import (
    PASSWORD,
    bearer,
    claims_of,
    code_for,
    enrol_totp,
    forget_last_step,
    login,
    mfa_login,
    post,
    signup,
    unique_email,
    user_with_totp,
)

_CODE = re.compile(r"^\s*(\d{6})\s*$", re.MULTILINE)


def _code_in(text: str) -> str:
    match = _CODE.search(text)
    assert match, text
    return match.group(1)


async def _enrolment_flow(client: httpx.AsyncClient, app: AppRecord, email: str) -> str:
    r = await login(client, app, email)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "mfa_enrollment_required"
    assert r.json()["factors"] == ["totp", "webauthn"]
    token: str = r.json()["flow_token"]
    return token


async def test_required_without_a_factor_enrols_before_any_token(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], configure: Callable[..., Any]
) -> None:
    app = provision()
    email = unique_email()
    await signup(client, app, email)
    await configure(app, mfa="required")
    flow = await _enrolment_flow(client, app, email)
    # The enrolment flow token is not a second factor, nor an access token.
    assert (
        await post(
            client, app, "/v1/login/mfa", {"flow_token": flow, "factor": "totp", "code": "123456"}
        )
    ).json()["code"] == "flow_expired"
    assert (await client.get(f"/apps/{app.app_id}/v1/mfa", headers=bearer(flow))).status_code == 401
    started = await post(client, app, "/v1/mfa/totp", {"flow_token": flow})
    assert started.status_code == 201, started.text
    secret, factor_id = started.json()["secret"], started.json()["factor_id"]
    done = await post(
        client,
        app,
        "/v1/mfa/totp/confirm",
        {"flow_token": flow, "factor_id": factor_id, "code": code_for(secret)},
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert len(body["recovery_codes"]) == 10
    claims = claims_of(body["tokens"]["access_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == "urn:oneauth:acr:mfa"
    # The flow is complete: its token enrols nothing more.
    assert (await post(client, app, "/v1/mfa/totp", {"flow_token": flow})).status_code == 400
    # From now on the factor is asked for.
    assert (await login(client, app, email)).json()["code"] == "mfa_required"


async def test_signup_under_required_mfa_enrols_before_any_token(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision(app_settings={"mfa": "required"})
    email = unique_email()
    r = await post(client, app, "/v1/signup", {"email": email, "password": PASSWORD})
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["code"] == "mfa_enrollment_required"
    assert "access_token" not in body
    assert body["user"]["email"] == email
    assert body["verification_flow_token"]
    started = (await post(client, app, "/v1/mfa/totp", {"flow_token": body["flow_token"]})).json()
    done = await post(
        client,
        app,
        "/v1/mfa/totp/confirm",
        {
            "flow_token": body["flow_token"],
            "factor_id": started["factor_id"],
            "code": code_for(started["secret"]),
        },
    )
    assert done.status_code == 200, done.text
    assert claims_of(done.json()["tokens"]["access_token"])["amr"] == ["pwd", "otp", "mfa"]


async def test_a_second_factor_flow_cannot_enrol_a_new_factor(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    configure: Callable[..., Any],
) -> None:
    """A stolen password gives a mfa_required flow token; it must not let the thief
    enrol a TOTP of their own and complete with it."""
    app = provision()
    email = unique_email()
    await signup(client, app, email)
    await configure(app, mfa="required")
    enrol = await _enrolment_flow(client, app, email)
    started = (await post(client, app, "/v1/mfa/totp", {"flow_token": enrol})).json()
    # Meanwhile, a second sign-in's enrolment flow, still open...
    other = await _enrolment_flow(client, app, email)
    await post(
        client,
        app,
        "/v1/mfa/totp/confirm",
        {
            "flow_token": enrol,
            "factor_id": started["factor_id"],
            "code": code_for(started["secret"]),
        },
    )
    # ... is dead once the user has a factor: it cannot add a second one.
    assert (await post(client, app, "/v1/mfa/totp", {"flow_token": other})).status_code == 400
    need = await login(client, app, email)
    assert need.json()["code"] == "mfa_required"
    assert (
        await post(client, app, "/v1/mfa/totp", {"flow_token": need.json()["flow_token"]})
    ).json()["code"] == "flow_expired"
    await forget_last_step(services, app)


async def test_passwordless_sign_in_needs_the_second_factor_too(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"passwordless": True})
    email, secret, _, _ = await user_with_totp(client, services, app)
    started = await post(client, app, "/v1/passwordless/start", {"email": email, "method": "code"})
    assert started.status_code == 202
    await deliver(app)
    code = _code_in(mailbox.to(email)[-1].text)
    r = await post(
        client,
        app,
        "/v1/passwordless/complete",
        {"flow_token": started.json()["flow_token"], "code": code},
    )
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "mfa_required"
    done = await post(
        client,
        app,
        "/v1/login/mfa",
        {"flow_token": r.json()["flow_token"], "factor": "totp", "code": code_for(secret)},
    )
    assert done.status_code == 200, done.text
    assert claims_of(done.json()["access_token"])["amr"] == ["otp", "mfa"]


async def test_a_password_reset_does_not_bypass_the_second_factor(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision()
    email, secret, _, _ = await user_with_totp(client, services, app)
    req = await post(client, app, "/v1/password/reset/request", {"email": email})
    await deliver(app)
    code = _code_in(mailbox.to(email)[-1].text)
    new_password = "another long passphrase 99"
    reset = await post(
        client,
        app,
        "/v1/password/reset",
        {"flow_token": req.json()["flow_token"], "code": code, "new_password": new_password},
    )
    assert reset.status_code == 204, reset.text
    assert "access_token" not in reset.text
    after = await login(client, app, email, new_password)
    assert after.status_code == 403
    assert after.json()["code"] == "mfa_required"
    done = await post(
        client,
        app,
        "/v1/login/mfa",
        {"flow_token": after.json()["flow_token"], "factor": "totp", "code": code_for(secret)},
    )
    assert done.status_code == 200


async def test_pre_mfa_session_refreshes_but_cannot_change_factors(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    configure: Callable[..., Any],
) -> None:
    """Documented choice (README "Multi-factor sign-in"): a session from before the
    policy became required keeps refreshing until it ends, with its one-factor amr;
    factor changes (and step-up) need a sign-in with the factor."""
    app = provision()
    email = unique_email()
    tokens = await signup(client, app, email)
    await configure(app, mfa="required")
    client_id = claims_of(tokens["access_token"])["client_id"]
    r = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        },
    )
    assert r.status_code == 200, r.text
    refreshed = r.json()["access_token"]
    assert claims_of(refreshed)["amr"] == ["pwd"]
    assert claims_of(refreshed)["acr"] == "urn:oneauth:acr:sfa"
    # Its recent password sign-in may enrol the first factor ...
    secret, factor_id, _ = await enrol_totp(client, app, refreshed)
    # ... but not remove it again, nor make new recovery codes: that needs the factor.
    gone = await client.delete(f"/apps/{app.app_id}/v1/mfa/{factor_id}", headers=bearer(refreshed))
    assert gone.status_code == 403
    assert gone.json()["code"] == "insufficient_user_authentication"
    # A new sign-in is asked for the factor.
    await forget_last_step(services, app)
    assert (await login(client, app, email)).json()["code"] == "mfa_required"
    _ = secret


async def test_a_one_factor_session_cannot_move_the_address_of_a_user_with_a_factor(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
) -> None:
    """An address change is the way to a password reset: once the user has a second
    factor, a session that did not use it (here the sign-up's, from before the
    factor) may not make it, even with the password; a sign-in with it may."""
    app = provision()
    email = unique_email()
    tokens = await signup(client, app, email)
    secret, _, _ = await enrol_totp(client, app, tokens["access_token"])
    body = {"new_email": unique_email("moved"), "password": PASSWORD}
    r = await client.post(
        f"/apps/{app.app_id}/v1/email/change", json=body, headers=bearer(tokens["access_token"])
    )
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "insufficient_user_authentication"
    assert 'acr_values="urn:oneauth:acr:mfa"' in r.headers["www-authenticate"]
    async with services.router.enter(app) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM outbox WHERE kind LIKE 'change_email%'") == 0
        )
    await forget_last_step(services, app)
    strong = await mfa_login(client, app, email, secret)
    r = await client.post(
        f"/apps/{app.app_id}/v1/email/change", json=body, headers=bearer(strong["access_token"])
    )
    assert r.status_code == 202, r.text


async def test_factor_changes_need_a_recent_sign_in(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email = unique_email()
    tokens = await signup(client, app, email)
    async with services.router.enter(app) as conn:
        await conn.execute("UPDATE sessions SET auth_time = now() - interval '11 minutes'")
    client_id = claims_of(tokens["access_token"])["client_id"]
    r = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        },
    )
    old = r.json()["access_token"]
    refused = await post(client, app, "/v1/mfa/totp", {}, old)
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_user_authentication"
    assert refused.json()["max_age"] == 600
    assert 'max_age="600"' in refused.headers["www-authenticate"]
    # Listing needs no recent sign-in.
    assert (await client.get(f"/apps/{app.app_id}/v1/mfa", headers=bearer(old))).status_code == 200


async def test_list_rename_and_remove_factors(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision()
    email, secret, factor_id, _ = await user_with_totp(client, services, app)
    tokens = await mfa_login(client, app, email, secret)
    token = tokens["access_token"]
    listed = (await client.get(f"/apps/{app.app_id}/v1/mfa", headers=bearer(token))).json()
    assert listed["mfa"] == "optional"
    kinds = {f["kind"]: f for f in listed["factors"]}
    assert set(kinds) == {"totp", "recovery_codes"}
    assert kinds["totp"]["confirmed"] is True
    assert kinds["recovery_codes"]["recovery_codes_left"] == 10
    renamed = await client.patch(
        f"/apps/{app.app_id}/v1/mfa/{factor_id}", json={"name": "Phone"}, headers=bearer(token)
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Phone"
    missing = await client.delete(
        f"/apps/{app.app_id}/v1/mfa/00000000-0000-4000-8000-000000000000", headers=bearer(token)
    )
    assert missing.status_code == 404
    gone = await client.delete(f"/apps/{app.app_id}/v1/mfa/{factor_id}", headers=bearer(token))
    assert gone.status_code == 204
    after = (await client.get(f"/apps/{app.app_id}/v1/mfa", headers=bearer(token))).json()
    assert after["factors"] == []  # the recovery codes went with the last factor
    assert (await login(client, app, email)).status_code == 200
    await deliver(app)
    assert any("turned off" in m.message["Subject"] for m in mailbox.to(email))


async def test_factors_and_flows_of_one_app_mean_nothing_at_another(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    a, b = provision(), provision()
    email, secret, factor_id, codes = await user_with_totp(client, services, a)
    await signup(client, b, email)  # the same address at app B, no factor there
    at_b = await login(client, b, email)
    assert at_b.status_code == 200
    assert claims_of(at_b.json()["access_token"])["amr"] == ["pwd"]
    flow_a = (await login(client, a, email)).json()["flow_token"]
    for factor, code in (("totp", code_for(secret)), ("recovery_code", codes[0])):
        r = await post(
            client, b, "/v1/login/mfa", {"flow_token": flow_a, "factor": factor, "code": code}
        )
        assert r.status_code == 400
        assert r.json()["code"] == "flow_expired"
    token_b = at_b.json()["access_token"]
    for method in ("PATCH", "DELETE"):
        r = await client.request(
            method,
            f"/apps/{b.app_id}/v1/mfa/{factor_id}",
            json={"name": "x"} if method == "PATCH" else None,
            headers=bearer(token_b),
        )
        assert r.status_code == 404
    assert (await client.get(f"/apps/{b.app_id}/v1/mfa", headers=bearer(token_b))).json()[
        "factors"
    ] == []
    # App A's enrolment is untouched and still asked for.
    assert (
        await post(
            client,
            a,
            "/v1/login/mfa",
            {"flow_token": flow_a, "factor": "totp", "code": code_for(secret)},
        )
    ).status_code == 200


def test_policy_settings_are_validated() -> None:
    assert parse({"mfa": "required", "mfa_factors": "totp,recovery_code"}).mfa_factors == (
        "totp",
        "recovery_code",
    )
    for bad in (
        {"mfa": "always"},
        {"mfa_factors": ["sms"]},
        {"mfa_factors": ["recovery_code"]},
        {"remember_device": True},
        {"mfa_change_max_age": 5},
    ):
        with pytest.raises(PolicyError):
            parse(bad)


_ = PASSWORD


def test_cli_configures_mfa_and_refuses_remember_device(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    done = cli(settings, "configure", app.app_id, "--set", "mfa=required")
    assert done.returncode == 0, done.stderr
    assert 'mfa: (default) -> "required"' in done.stdout
    factors = cli(settings, "configure", app.app_id, "--set", "mfa_factors=totp,recovery_code")
    assert factors.returncode == 0, factors.stderr
    refused = cli(settings, "configure", app.app_id, "--set", "remember_device=true")
    assert refused.returncode != 0
    assert "remember_device" in refused.stderr
    with ops.connect(settings.operator_url) as conn:
        record = lifecycle.get(conn, app.app_id)
    assert record is not None
    assert parse(record.settings).mfa == "required"
    assert parse(record.settings).mfa_factors == ("totp", "recovery_code")
