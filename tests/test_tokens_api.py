"""Issue 3: tokens and the first-party API, including the app boundary (B1)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import structlog

from apiclient import (
    PASSWORD,
    age_refresh_use,
    confidential_client,
    default_client_id,
    login,
    refresh,
    signup,
)
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.sessions.repo import REUSE_GRACE_SECONDS
from oneauth.settings import Settings
from oneauth.verifier import VerificationError, Verifier


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def decode(segment: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        )
        return data

    header, payload, _ = token.split(".")
    return decode(header), decode(payload)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_access_token_shape(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    body = await signup(client, app.app_id, "shape@example.com")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["refresh_token"].startswith("ort_")
    assert len(body["refresh_token"]) >= 4 + 43  # 256 bits, base64url
    header, claims = jwt_parts(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"]
    issuer = settings.issuer_for(app.app_id)
    assert claims["iss"] == issuer
    assert claims["aud"] == f"{issuer}/api"
    assert claims["app_id"] == app.app_id
    assert claims["sub"] == body["user"]["id"]
    assert claims["client_id"] == await default_client_id(client, app.app_id)
    for name in ("exp", "iat", "nbf", "jti", "scope", "sid", "amr", "auth_time"):
        assert name in claims, name
    assert claims["exp"] - claims["iat"] == 600


async def test_same_email_in_two_apps_is_two_identities(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    service: Any,
) -> None:
    a, b = provision(), provision()
    in_a = await signup(client, a.app_id, "twin@example.com")
    in_b = await signup(client, b.app_id, "twin@example.com")
    assert in_a["user"]["id"] != in_b["user"]["id"]
    token_a = in_a["access_token"]

    # A's access token is refused by B's endpoints ...
    me = await client.get(f"/apps/{b.app_id}/v1/me", headers=bearer(token_a))
    assert me.status_code == 401
    assert me.json()["code"] == "invalid_token"
    assert (await client.get(f"/apps/{a.app_id}/v1/me", headers=bearer(token_a))).status_code == 200

    # ... by B's introspection (active: false) ...
    cid_b, secret_b = confidential_client(settings, b)
    seen = await client.post(
        f"/apps/{b.app_id}/oauth/introspect", data={"token": token_a}, auth=(cid_b, secret_b)
    )
    assert seen.status_code == 200
    assert seen.json() == {"active": False}
    seen = await client.post(
        f"/apps/{b.app_id}/oauth/introspect",
        data={"token": in_a["refresh_token"]},
        auth=(cid_b, secret_b),
    )
    assert seen.json() == {"active": False}

    # ... by B's revocation (no effect on A) ...
    default_b = await default_client_id(client, b.app_id)
    for value in (token_a, in_a["refresh_token"]):
        revoked = await client.post(
            f"/apps/{b.app_id}/oauth/revoke", data={"token": value, "client_id": default_b}
        )
        assert revoked.status_code == 200
    assert (await client.get(f"/apps/{a.app_id}/v1/me", headers=bearer(token_a))).status_code == 200

    # ... by a verifier configured for B ...
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport) as http:
        issuer_b = settings.issuer_for(b.app_id)
        verifier_b = Verifier(issuer_b, f"{issuer_b}/api", b.app_id, async_http_client=http)
        with pytest.raises(VerificationError):
            await verifier_b.averify(token_a)
        assert (await verifier_b.averify(in_b["access_token"])).app_id == b.app_id

    # ... and A's refresh token is refused at B's token endpoint, even with A's client id.
    default_a = await default_client_id(client, a.app_id)
    for client_id in (default_b, default_a):
        refused = await refresh(client, b.app_id, client_id, in_a["refresh_token"])
        assert refused.status_code in (400, 401)
        assert refused.json()["error"] in ("invalid_grant", "invalid_client")
    # A's refresh token still works at A: B's attempts changed nothing.
    assert (await refresh(client, a.app_id, default_a, in_a["refresh_token"])).status_code == 200


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    first = await signup(client, app.app_id, "rotate@example.com")
    cid = await default_client_id(client, app.app_id)
    second = await refresh(client, app.app_id, cid, first["refresh_token"])
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["token_type"] == "Bearer"
    assert second.headers["cache-control"] == "no-store"

    # Past the grace window for a concurrent loser (test_refresh_races.py), a used
    # token coming back is a replay.
    await age_refresh_use(services, app.app_id, first["refresh_token"], REUSE_GRACE_SECONDS + 1)
    replay = await refresh(client, app.app_id, cid, first["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # The replay ended the whole family: the newest token and access tokens are dead too.
    assert (await refresh(client, app.app_id, cid, rotated["refresh_token"])).status_code == 400
    me = await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 401
    async with services.router.app(app.app_id) as conn:
        events = [
            r["event"]
            for r in await conn.fetch(
                "SELECT event FROM audit_log WHERE outcome = 'denied' ORDER BY id"
            )
        ]
    assert "token.refresh_reuse" in events


async def test_concurrent_refreshes_with_one_token_get_one_successor(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
) -> None:
    # The others wait for the first one's lock, then find the token just rotated and
    # get its successor again (sessions.REUSE_GRACE_SECONDS): one live token, no 5xx.
    # Several rounds, because a lock-order deadlock between them shows up as a 500
    # in only some interleavings.
    app = provision()
    cid = await default_client_id(client, app.app_id)
    for round_ in range(6):
        start = await signup(client, app.app_id, f"race{round_}@example.com")
        results = await asyncio.gather(
            *(refresh(client, app.app_id, cid, start["refresh_token"]) for _ in range(10))
        )
        seen = [(r.status_code, r.text[:200]) for r in results]
        assert [r.status_code for r in results] == [200] * 10, seen
        assert len({r.json()["refresh_token"] for r in results}) == 1, seen
        assert len({r.json()["access_token"] for r in results}) == 10
        successor = results[0].json()["refresh_token"]
        assert (await refresh(client, app.app_id, cid, successor)).status_code == 200


async def test_client_credentials(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    app = provision()
    cid, secret = confidential_client(settings, app)
    response = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "orders:read"},
        auth=(cid, secret),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body
    assert body["scope"] == "orders:read"
    _, claims = jwt_parts(body["access_token"])
    assert claims["sub"] == cid == claims["client_id"]
    assert claims["grant"] == "client_credentials"
    assert "sid" not in claims
    # A client token is not a user token (T4).
    me = await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 403
    # Introspection says active, with the client's claims.
    seen = await client.post(
        f"/apps/{app.app_id}/oauth/introspect",
        data={"token": body["access_token"]},
        auth=(cid, secret),
    )
    assert seen.json()["active"] is True
    assert seen.json()["grant"] == "client_credentials"
    # Beyond the client's scopes, wrong secret, secret in both places, unknown grant:
    cases: list[tuple[dict[str, str], tuple[str, str] | None, int, str]] = [
        (
            {"grant_type": "client_credentials", "scope": "admin"},
            (cid, secret),
            400,
            "invalid_scope",
        ),
        ({"grant_type": "client_credentials"}, (cid, secret + "x"), 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_secret": secret},
            (cid, secret),
            400,
            "invalid_request",
        ),
        ({"grant_type": "password"}, (cid, secret), 400, "unsupported_grant_type"),
        (
            {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
            None,
            401,
            "invalid_client",
        ),  # registered for client_secret_basic, not _post
    ]
    for form, auth, status, error in cases:
        refused = await client.post(
            f"/apps/{app.app_id}/oauth/token",
            data=form,
            auth=auth if auth else httpx.USE_CLIENT_DEFAULT,
        )
        assert refused.status_code == status, (form, refused.text)
        assert refused.json()["error"] == error
    assert refused.headers.get("www-authenticate") is None
    basic_fail = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cid, "nope"),
    )
    assert basic_fail.headers["www-authenticate"].startswith("Basic")


async def test_public_client_cannot_use_client_credentials_or_introspect(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    cc = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": cid},
    )
    assert cc.status_code == 400
    assert cc.json()["error"] == "unauthorized_client"
    seen = await client.post(
        f"/apps/{app.app_id}/oauth/introspect", data={"token": "x", "client_id": cid}
    )
    assert seen.status_code == 401


async def test_client_of_app_a_is_unknown_at_app_b(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    a, b = provision(), provision()
    cid, secret = confidential_client(settings, a)
    response = await client.post(
        f"/apps/{b.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cid, secret),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_logout_and_password_change_end_sessions(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    one = await signup(client, app.app_id, "sessions@example.com")
    two = (await login(client, app.app_id, "sessions@example.com")).json()
    three = (await login(client, app.app_id, "sessions@example.com")).json()

    assert (
        await client.post(f"/apps/{app.app_id}/v1/logout", headers=bearer(one["access_token"]))
    ).status_code == 204
    assert (
        await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(one["access_token"]))
    ).status_code == 401
    assert (await refresh(client, app.app_id, cid, one["refresh_token"])).status_code == 400

    wrong = await client.post(
        f"/apps/{app.app_id}/v1/password",
        headers=bearer(two["access_token"]),
        json={"current_password": "not-it-at-all", "new_password": "x"},
    )
    assert wrong.status_code == 401
    weak = await client.post(
        f"/apps/{app.app_id}/v1/password",
        headers=bearer(two["access_token"]),
        json={"current_password": PASSWORD, "new_password": "password123"},
    )
    assert weak.status_code == 422
    assert weak.json()["reason"] == "common"
    changed = await client.post(
        f"/apps/{app.app_id}/v1/password",
        headers=bearer(two["access_token"]),
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase 7"},
    )
    assert changed.status_code == 204
    # The session that changed it lives on; the others are gone (S3).
    assert (
        await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(two["access_token"]))
    ).status_code == 200
    assert (
        await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(three["access_token"]))
    ).status_code == 401
    assert (await refresh(client, app.app_id, cid, three["refresh_token"])).status_code == 400
    assert (await login(client, app.app_id, "sessions@example.com")).status_code == 401
    assert (
        await login(client, app.app_id, "sessions@example.com", "a brand new passphrase 7")
    ).status_code == 200


async def test_revoke_refresh_token_ends_the_session(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    tokens = await signup(client, app.app_id, "revoke@example.com")
    response = await client.post(
        f"/apps/{app.app_id}/oauth/revoke",
        data={"token": tokens["refresh_token"], "client_id": cid},
    )
    assert response.status_code == 200
    assert (await refresh(client, app.app_id, cid, tokens["refresh_token"])).status_code == 400
    assert (
        await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(tokens["access_token"]))
    ).status_code == 401
    # Unknown tokens are ignored quietly (RFC 7009 section 2.2).
    assert (
        await client.post(
            f"/apps/{app.app_id}/oauth/revoke", data={"token": "ort_nothing", "client_id": cid}
        )
    ).status_code == 200


async def test_signup_policy_for_existing_email(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    await signup(client, app.app_id, "taken@example.com")
    again = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": " TAKEN@example.com ", "password": PASSWORD}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "email_taken"

    strict = provision(app_settings={"require_verified_email": True})
    answers = []
    for email in ("new@example.com", "new@example.com"):
        response = await client.post(
            f"/apps/{strict.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
        )
        body = response.json()
        # A fresh random flow token each time (for the emailed code; issue 5).
        assert len(body.pop("flow_token")) == 43
        answers.append((response.status_code, body))
    assert (
        answers[0]
        == answers[1]
        == (202, {"user": {"email": "new@example.com"}, "verification_required": True})
    )
    # Unverified users cannot log in when the app requires verification.
    denied = await login(client, strict.app_id, "new@example.com")
    assert denied.status_code == 403
    assert denied.json()["code"] == "email_not_verified"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[]", "application/json", 400, "invalid_json"),
        (b'{"email": "a@example.com"}', "application/json", 422, "validation_failed"),
        (b'{"email": 5, "password": "x"}', "application/json", 422, "validation_failed"),
        (b"email=a", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (
            b'{"email": "a@example.com", "password": "' + b"x" * 70000 + b'"}',
            "application/json",
            413,
            "payload_too_large",
        ),
    ],
)
async def test_bad_input_gets_a_clear_problem(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    body: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    app = provision()
    response = await client.post(
        f"/apps/{app.app_id}/v1/login", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "too_short"),
        ("x" * 129, "too_long"),
        ("password123", "common"),
        ("Qwerty123456", "common"),
    ],
)
async def test_signup_password_policy(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    password: str,
    reason: str,
) -> None:
    app = provision()
    response = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": "policy@example.com", "password": password}
    )
    assert response.status_code == 422
    assert response.json()["reason"] == reason


async def test_no_secrets_in_logs(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        tokens = await signup(client, app.app_id, "logs@example.com")
        cid = await default_client_id(client, app.app_id)
        await refresh(client, app.app_id, cid, tokens["refresh_token"])
        await login(client, app.app_id, "logs@example.com", "wrong password here")
    text = json.dumps(logs, default=str)
    for secret in (
        PASSWORD,
        "wrong password here",
        tokens["access_token"],
        tokens["refresh_token"],
    ):
        assert secret not in text
    assert any(entry.get("event") == "request" for entry in logs)
