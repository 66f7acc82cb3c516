"""Passkeys through the first-party API (issue 12), with a software authenticator
doing real P-256 signatures over real CBOR (:mod:`softauthn`).

The test service's public URL is http://testserver: RP ID ``testserver``, origin
``http://testserver``, shared by every app the tests provision, exactly as apps
on one issuer host share it in production.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from apiclient import PASSWORD, login, signup
from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from softauthn import SoftAuthenticator, b64u, unb64u

ORIGIN = "http://testserver"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return value


async def register_passkey(
    client: httpx.AsyncClient,
    app_id: str,
    token: str,
    authenticator: SoftAuthenticator,
    *,
    origin: str = ORIGIN,
    name: str | None = "Laptop",
) -> httpx.Response:
    options = await client.post(
        f"/apps/{app_id}/v1/mfa/webauthn/registration/options", json={}, headers=bearer(token)
    )
    assert options.status_code == 200, options.text
    credential = authenticator.create(options.json()["publicKey"], origin)
    body: dict[str, Any] = {"credential": credential}
    if name is not None:
        body["name"] = name
    return await client.post(
        f"/apps/{app_id}/v1/mfa/webauthn/registration", json=body, headers=bearer(token)
    )


async def request_options(
    client: httpx.AsyncClient, app_id: str, flow_token: str | None = None
) -> dict[str, Any]:
    body = {} if flow_token is None else {"flow_token": flow_token}
    response = await client.post(
        f"/apps/{app_id}/v1/mfa/webauthn/authentication/options", json=body
    )
    assert response.status_code == 200, response.text
    value: dict[str, Any] = response.json()
    return value


async def submit(
    client: httpx.AsyncClient, app_id: str, flow_token: str, assertion: Any
) -> httpx.Response:
    return await client.post(
        f"/apps/{app_id}/v1/login/mfa",
        json={"flow_token": flow_token, "factor": "webauthn", "assertion": assertion},
    )


async def user_with_passkey(
    client: httpx.AsyncClient, app: AppRecord, email: str, **authenticator: Any
) -> tuple[dict[str, Any], SoftAuthenticator]:
    body = await signup(client, app.app_id, email)
    key = SoftAuthenticator(**authenticator)
    response = await register_passkey(client, app.app_id, body["access_token"], key)
    assert response.status_code == 201, response.text
    return body, key


# -- registration -------------------------------------------------------------


async def test_register_a_passkey(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision(name="Key Shop")
    body = await signup(client, app.app_id, "reg@example.com")
    token = body["access_token"]
    options = await client.post(
        f"/apps/{app.app_id}/v1/mfa/webauthn/registration/options", json={}, headers=bearer(token)
    )
    assert options.status_code == 200, options.text
    assert options.headers["cache-control"] == "no-store"
    public_key = options.json()["publicKey"]
    assert public_key["rp"] == {"id": "testserver", "name": "Key Shop"}
    assert public_key["attestation"] == "none"
    assert public_key["excludeCredentials"] == []
    assert public_key["authenticatorSelection"]["residentKey"] in ("preferred", "required")
    assert "Key Shop" in public_key["user"]["displayName"]
    # The user handle: 32 random bytes of this app, never the user id.
    handle = unb64u(public_key["user"]["id"])
    assert len(handle) == 32
    assert body["user"]["id"].encode() not in handle
    key = SoftAuthenticator()
    credential = key.create(public_key, ORIGIN)
    stored = await client.post(
        f"/apps/{app.app_id}/v1/mfa/webauthn/registration",
        json={"credential": credential, "name": "Work laptop"},
        headers=bearer(token),
    )
    assert stored.status_code == 201, stored.text
    factor = stored.json()
    assert factor["kind"] == "webauthn"
    assert factor["name"] == "Work laptop"
    assert factor["backup_eligible"] is False
    async with services.router.app(app.app_id) as conn:
        row = await conn.fetchrow(
            "SELECT f.confirmed_at, c.credential_id, c.sign_count, c.user_verified"
            " FROM mfa_factors f JOIN webauthn_credentials c ON c.factor_id = f.id"
            " WHERE f.id = $1::uuid",
            factor["factor_id"],
        )
    assert row is not None
    assert row["confirmed_at"] is not None
    assert bytes(row["credential_id"]) == key.passkeys[0].credential_id
    assert row["user_verified"] is True
    # The first second factor brings the recovery codes (shown once).
    assert len(factor["recovery_codes"]) == 10
    # Adding another now needs a sign-in that used the second factor (the password
    # token of the signup is not enough): sign in with the passkey first.
    refused = await client.post(
        f"/apps/{app.app_id}/v1/mfa/webauthn/registration/options", json={}, headers=bearer(token)
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_user_authentication"
    started = await request_options(client, app.app_id)
    signed_in = await submit(
        client, app.app_id, started["flow_token"], key.get(started["publicKey"], ORIGIN)
    )
    token = signed_in.json()["access_token"]
    # The same handle again, and the first passkey is excluded from a second registration.
    again = await client.post(
        f"/apps/{app.app_id}/v1/mfa/webauthn/registration/options", json={}, headers=bearer(token)
    )
    assert unb64u(again.json()["publicKey"]["user"]["id"]) == handle
    excluded = [c["id"] for c in again.json()["publicKey"]["excludeCredentials"]]
    assert excluded == [b64u(key.passkeys[0].credential_id)]
    second = SoftAuthenticator().create(again.json()["publicKey"], ORIGIN)
    stored = await client.post(
        f"/apps/{app.app_id}/v1/mfa/webauthn/registration",
        json={"credential": second},
        headers=bearer(token),
    )
    assert stored.status_code == 201, stored.text
    assert "recovery_codes" not in stored.json()  # the set exists already
    listed = await client.get(f"/apps/{app.app_id}/v1/mfa", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    kinds = sorted(f["kind"] for f in listed.json()["factors"])
    assert kinds.count("webauthn") == 2


async def test_enrolment_required_by_policy_can_be_a_passkey(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    """mfa=required and no factor: the password sign-in answers 403
    mfa_enrollment_required; registering a passkey with that flow token completes it."""
    app = provision(app_settings={"mfa": "required"})
    await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": "enrol@example.com", "password": PASSWORD}
    )
    first = await login(client, app.app_id, "enrol@example.com")
    assert first.status_code == 403, first.text
    assert first.json()["code"] == "mfa_enrollment_required"
    assert "webauthn" in first.json()["factors"]
    flow_token = first.json()["flow_token"]
    url = f"/apps/{app.app_id}/v1/mfa/webauthn/registration"
    options = await client.post(f"{url}/options", json={"flow_token": flow_token})
    assert options.status_code == 200, options.text
    credential = SoftAuthenticator().create(options.json()["publicKey"], ORIGIN)
    done = await client.post(url, json={"credential": credential, "flow_token": flow_token})
    assert done.status_code == 201, done.text
    body = done.json()
    assert len(body["recovery_codes"]) == 10
    claims = claims_of(body["tokens"]["access_token"])
    assert set(claims["amr"]) >= {"pwd", "hwk", "mfa"}
    # The flow is spent: no second passkey on it.
    again = await client.post(f"{url}/options", json={"flow_token": flow_token})
    assert again.status_code == 400
    assert again.json()["code"] == "flow_expired"


async def test_user_handles_differ_between_apps(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    handles = []
    for app in (provision(), provision()):
        token = (await signup(client, app.app_id, "twin@example.com"))["access_token"]
        options = await client.post(
            f"/apps/{app.app_id}/v1/mfa/webauthn/registration/options",
            json={},
            headers=bearer(token),
        )
        handles.append(options.json()["publicKey"]["user"]["id"])
    assert handles[0] != handles[1]


async def test_registration_challenge_is_single_use_and_bound_to_the_user(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    # mfa=off: a second registration on the password token reaches the challenge check.
    app = provision(app_settings={"mfa": "off"})
    ada = (await signup(client, app.app_id, "ada@example.com"))["access_token"]
    bob = (await signup(client, app.app_id, "bob@example.com"))["access_token"]
    options = await client.post(
        f"/apps/{app.app_id}/v1/mfa/webauthn/registration/options", json={}, headers=bearer(ada)
    )
    credential = SoftAuthenticator().create(options.json()["publicKey"], ORIGIN)
    url = f"/apps/{app.app_id}/v1/mfa/webauthn/registration"
    # Bob cannot store a passkey made for Ada's options (her handle, her challenge)...
    stolen = await client.post(url, json={"credential": credential}, headers=bearer(bob))
    assert stolen.status_code == 422, stolen.text
    assert stolen.json()["code"] == "validation_failed"
    # ...Ada can, once.
    first = await client.post(url, json={"credential": credential}, headers=bearer(ada))
    assert first.status_code == 201, first.text
    replay = await client.post(url, json={"credential": credential}, headers=bearer(ada))
    assert replay.status_code == 422
    assert "expired or was already used" in replay.json()["detail"]


async def test_registration_from_another_origin_is_refused(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    token = (await signup(client, app.app_id, "phish@example.com"))["access_token"]
    response = await register_passkey(
        client, app.app_id, token, SoftAuthenticator(), origin="https://testserver.evil.example"
    )
    assert response.status_code == 422
    assert "origin" in response.json()["detail"]


async def test_user_verification_required_by_policy(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision(app_settings={"webauthn_user_verification": "required"})
    token = (await signup(client, app.app_id, "uv@example.com"))["access_token"]
    refused = await register_passkey(
        client, app.app_id, token, SoftAuthenticator(user_verifying=False)
    )
    assert refused.status_code == 422
    assert "verify the user" in refused.json()["detail"]
    accepted = await register_passkey(client, app.app_id, token, SoftAuthenticator())
    assert accepted.status_code == 201


async def test_registration_needs_a_recent_sign_in(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    body = await signup(client, app.app_id, "old@example.com")
    async with services.router.app(app.app_id) as conn:
        await conn.execute("UPDATE sessions SET auth_time = auth_time - interval '1 hour'")
    client_id = claims_of(body["access_token"])["client_id"]
    refreshed = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    old = refreshed.json()["access_token"]
    assert claims_of(old)["auth_time"] < claims_of(body["access_token"])["auth_time"] - 3000
    response = await client.post(
        f"/apps/{app.app_id}/v1/mfa/webauthn/registration/options", json={}, headers=bearer(old)
    )
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_user_authentication"
    assert "insufficient_user_authentication" in response.headers["www-authenticate"]
    no_token = await client.post(
        f"/apps/{app.app_id}/v1/mfa/webauthn/registration/options", json={}
    )
    assert no_token.status_code == 401


async def test_malformed_registration_bodies_are_4xx(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    token = (await signup(client, app.app_id, "junk@example.com"))["access_token"]
    url = f"/apps/{app.app_id}/v1/mfa/webauthn/registration"
    bodies: list[dict[str, Any]] = [
        {"credential": "x"},
        {"credential": {}},
        {"credential": {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}},
        {"credential": {"id": "!", "rawId": "!", "response": {"clientDataJSON": "%%"}}},
    ]
    for body in bodies:
        response = await client.post(url, json=body, headers=bearer(token))
        assert response.status_code == 422, (body, response.text)


# -- authentication -------------------------------------------------------------


async def test_passwordless_sign_in_with_a_passkey(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    body, key = await user_with_passkey(client, app, "nopass@example.com")
    started = await request_options(client, app.app_id)
    assert started["flow_token"].startswith("ofl_")
    assert started["publicKey"]["rpId"] == "testserver"
    assert started["publicKey"]["allowCredentials"] == []  # discoverable
    assert started["publicKey"]["userVerification"] == "required"
    assertion = key.get(started["publicKey"], ORIGIN)
    response = await submit(client, app.app_id, started["flow_token"], assertion)
    assert response.status_code == 200, response.text
    claims = claims_of(response.json()["access_token"])
    assert claims["sub"] == body["user"]["id"]
    # One passkey with user verification: possession + PIN/biometric (RFC 8176).
    assert set(claims["amr"]) == {"hwk", "user", "mfa"}
    assert claims["acr"] == "urn:oneauth:acr:mfa"
    # The flow is done and the challenge spent: the same assertion again is refused.
    again = await submit(client, app.app_id, started["flow_token"], assertion)
    assert again.status_code in (400, 401)


async def test_passkey_as_second_factor_after_the_password(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    body, key = await user_with_passkey(
        client, app, "second@example.com", user_verifying=False, synced=True
    )
    first = await login(client, app.app_id, "second@example.com")
    assert first.status_code == 403, first.text
    problem = first.json()
    assert problem["code"] == "mfa_required"
    assert "webauthn" in problem["factors"]
    flow_token = problem["flow_token"]
    options = await request_options(client, app.app_id, flow_token)
    assert "flow_token" not in options
    allowed = [c["id"] for c in options["publicKey"]["allowCredentials"]]
    assert allowed == [b64u(key.passkeys[0].credential_id)]
    assertion = key.get(options["publicKey"], ORIGIN)
    response = await submit(client, app.app_id, flow_token, assertion)
    assert response.status_code == 200, response.text
    claims = claims_of(response.json()["access_token"])
    assert claims["sub"] == body["user"]["id"]
    # A synced passkey without user verification: swk, and with the password, mfa.
    assert set(claims["amr"]) == {"pwd", "swk", "mfa"}


async def test_passwordless_needs_user_verification(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    _, key = await user_with_passkey(client, app, "nouv@example.com", user_verifying=False)
    started = await request_options(client, app.app_id)
    response = await submit(
        client, app.app_id, started["flow_token"], key.get(started["publicKey"], ORIGIN)
    )
    assert response.status_code == 401
    assert response.json()["code"] == "passkey_refused"


async def test_a_passkey_of_app_a_is_refused_at_app_b_like_an_unknown_one(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    """Both apps share RP ID testserver, so the authenticator signs for B with A's
    passkey; B finds no such credential in its schema (W1)."""
    a, b = provision(), provision()
    _, key = await user_with_passkey(client, a, "both@example.com")
    await user_with_passkey(client, b, "both@example.com")  # a passkey at B too, another one
    answers = []
    for authenticator, passkey in ((key, key.passkeys[0]), (SoftAuthenticator(), None)):
        started = await request_options(client, b.app_id)
        if passkey is None:  # a credential no app has ever seen
            authenticator.create(
                {"rp": {"id": "testserver"}, "user": {"id": b64u(b"u" * 32)}, "challenge": "AA"},
                ORIGIN,
            )
            passkey = authenticator.passkeys[0]
        assertion = authenticator.assert_with(passkey, started["publicKey"]["challenge"], ORIGIN)
        response = await submit(client, b.app_id, started["flow_token"], assertion)
        answers.append((response.status_code, response.json()["code"], response.json()["detail"]))
    assert answers[0] == answers[1] == (401, "passkey_refused", "The passkey was not accepted")
    # And A's passkey still works at A.
    started = await request_options(client, a.app_id)
    ok = await submit(
        client, a.app_id, started["flow_token"], key.get(started["publicKey"], ORIGIN)
    )
    assert ok.status_code == 200, ok.text


async def test_flow_token_of_app_a_is_unknown_at_app_b(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    a, b = provision(), provision()
    started = await request_options(client, a.app_id)
    response = await client.post(
        f"/apps/{b.app_id}/v1/mfa/webauthn/authentication/options",
        json={"flow_token": started["flow_token"]},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "flow_expired"


async def test_another_users_passkey_does_not_finish_a_second_factor(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    await user_with_passkey(client, app, "victim@example.com")
    _, mallory = await user_with_passkey(client, app, "mallory@example.com")
    problem = (await login(client, app.app_id, "victim@example.com")).json()
    options = await request_options(client, app.app_id, problem["flow_token"])
    forged = mallory.assert_with(mallory.passkeys[0], options["publicKey"]["challenge"], ORIGIN)
    response = await submit(client, app.app_id, problem["flow_token"], forged)
    assert response.status_code == 401
    assert response.json()["code"] == "passkey_refused"


async def test_counter_going_backwards_is_refused_and_audited(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    _, key = await user_with_passkey(client, app, "clone@example.com")
    passkey = key.passkeys[0]
    started = await request_options(client, app.app_id)
    assertion = key.assert_with(passkey, started["publicKey"]["challenge"], ORIGIN, sign_count=7)
    assert (await submit(client, app.app_id, started["flow_token"], assertion)).status_code == 200
    # A clone that still counts from where it was copied.
    started = await request_options(client, app.app_id)
    cloned = key.assert_with(passkey, started["publicKey"]["challenge"], ORIGIN, sign_count=5)
    refused = await submit(client, app.app_id, started["flow_token"], cloned)
    assert refused.status_code == 401
    assert refused.json()["code"] == "passkey_refused"
    async with services.router.app(app.app_id) as conn:
        events = await conn.fetch(
            "SELECT outcome, details FROM audit_log WHERE event = 'mfa.webauthn_counter_regression'"
        )
        count = await conn.fetchval("SELECT sign_count FROM webauthn_credentials")
    assert len(events) == 1
    assert events[0]["outcome"] == "denied"
    assert json.loads(events[0]["details"]) == {"stored": 7, "presented": 5}
    assert audit.is_security_event("mfa.webauthn_counter_regression", "denied", None)
    assert count == 7
    # Equal is not greater either; the genuine authenticator's next value works.
    started = await request_options(client, app.app_id)
    same = key.assert_with(passkey, started["publicKey"]["challenge"], ORIGIN, sign_count=7)
    assert (await submit(client, app.app_id, started["flow_token"], same)).status_code == 401
    started = await request_options(client, app.app_id)
    good = key.assert_with(passkey, started["publicKey"]["challenge"], ORIGIN, sign_count=8)
    assert (await submit(client, app.app_id, started["flow_token"], good)).status_code == 200


async def test_a_synced_passkey_without_a_counter_keeps_working(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    _, key = await user_with_passkey(client, app, "synced@example.com", synced=True)
    for _ in range(2):
        started = await request_options(client, app.app_id)
        assertion = key.get(started["publicKey"], ORIGIN)
        response = await submit(client, app.app_id, started["flow_token"], assertion)
        assert response.status_code == 200, response.text
        assert "swk" in claims_of(response.json()["access_token"])["amr"]


async def test_concurrent_double_submit_of_one_assertion_exactly_one_wins(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    _, key = await user_with_passkey(client, app, "race@example.com", synced=True)
    for _ in range(3):
        started = await request_options(client, app.app_id)
        assertion = key.get(started["publicKey"], ORIGIN)
        answers = await asyncio.gather(
            *(submit(client, app.app_id, started["flow_token"], assertion) for _ in range(4))
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses.count(200) == 1, [r.text for r in answers]
        assert all(s in (400, 401) for s in statuses if s != 200)


async def test_an_expired_challenge_is_refused(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    _, key = await user_with_passkey(client, app, "late@example.com")
    started = await request_options(client, app.app_id)
    async with services.router.app(app.app_id) as conn:
        await conn.execute(
            "UPDATE webauthn_challenges SET expires_at = now() - interval '1 second'"
            " WHERE purpose = 'authenticate'"
        )
    response = await submit(
        client, app.app_id, started["flow_token"], key.get(started["publicKey"], ORIGIN)
    )
    assert response.status_code == 401
    assert response.json()["code"] == "passkey_refused"


async def test_an_assertion_for_another_origin_is_refused(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    _, key = await user_with_passkey(client, app, "origin@example.com")
    started = await request_options(client, app.app_id)
    phished = key.get(started["publicKey"], "https://login-testserver.example")
    response = await submit(client, app.app_id, started["flow_token"], phished)
    assert response.status_code == 401


@pytest.mark.parametrize("assertion", [None, "x", 1, [], {}, {"id": "AA", "response": {}}])
async def test_malformed_assertions_are_refused_not_5xx(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], assertion: Any
) -> None:
    app = provision()
    started = await request_options(client, app.app_id)
    response = await submit(client, app.app_id, started["flow_token"], assertion)
    assert 400 <= response.status_code < 500, response.text


async def test_passkeys_off_when_not_among_the_apps_factors(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision(app_settings={"mfa_factors": ["totp", "recovery_code"]})
    token = (await signup(client, app.app_id, "off@example.com"))["access_token"]
    for url, headers in (
        ("registration/options", bearer(token)),
        ("authentication/options", {}),
    ):
        response = await client.post(
            f"/apps/{app.app_id}/v1/mfa/webauthn/{url}", json={}, headers=headers
        )
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "feature_disabled"


async def test_abandoned_passwordless_flows_are_swept(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    """Anyone may ask for passwordless options (a flow each): expired ones that never
    found a user go when the next is begun, with their challenges."""
    app = provision()
    for _ in range(3):
        await request_options(client, app.app_id)
    async with services.router.app(app.app_id) as conn:
        await conn.execute("UPDATE auth_flows SET expires_at = now() - interval '1 minute'")
    await request_options(client, app.app_id)
    async with services.router.app(app.app_id) as conn:
        flows = await conn.fetchval("SELECT count(*) FROM auth_flows")
        challenges = await conn.fetchval("SELECT count(*) FROM webauthn_challenges")
    assert flows == 1
    assert challenges == 1


async def test_passwordless_starts_are_throttled_per_ip_even_when_concurrent(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    """Anyone may begin a passwordless passkey sign-in (no user is known yet), and
    each leaves a flow row: one IP gets 30 a minute in each app (W7), counted one by
    one under a row lock even when the requests come at once; other apps keep theirs."""
    from oneauth.identity.webauthn import ANONYMOUS_PER_IP

    a, b = provision(), provision()
    path = f"/apps/{a.app_id}/v1/mfa/webauthn/authentication/options"
    answers = await asyncio.gather(
        *(client.post(path, json={}) for _ in range(ANONYMOUS_PER_IP + 5))
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * ANONYMOUS_PER_IP + [429] * 5
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    async with services.router.enter(a) as conn:
        flows = await conn.fetchval("SELECT count(*) FROM auth_flows WHERE user_id IS NULL")
    assert flows == ANONYMOUS_PER_IP  # a refused start stored nothing
    # Another app keeps its own allowance.
    started = await request_options(client, b.app_id)
    assert started["flow_token"].startswith("ofl_")
