"""Login security: throttling (P3), no enumeration (P4), rehash (P1), audit (A1)."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import argon2
import httpx
import pytest
from starlette.applications import Starlette

from apiclient import PASSWORD, age_refresh_use, default_client_id, login, refresh, signup
from oneauth.apps.models import AppRecord
from oneauth.services import Services


@pytest.fixture
async def attacker(service: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service, client=("203.0.113.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def owner(service: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service, client=("198.51.100.20", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_unknown_email_and_wrong_password_look_the_same(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    await signup(client, app.app_id, "known@example.com")
    known: list[float] = []
    unknown: list[float] = []
    bodies = set()
    for n in range(4):
        for email, bucket in (("known@example.com", known), (f"ghost{n}@example.com", unknown)):
            started = time.perf_counter()
            response = await login(client, app.app_id, email, f"wrong-password-{n}")
            bucket.append(time.perf_counter() - started)
            assert response.status_code == 401
            body = response.json()
            body.pop("request_id")
            bodies.add(tuple(sorted(body.items())))
    assert len(bodies) == 1  # same status and body, byte for byte but the request id
    # Both paths run one argon2 verify; medians agree within a generous factor.
    ratio = statistics.median(known) / statistics.median(unknown)
    assert 0.5 < ratio < 2.0, (known, unknown)


async def test_pair_throttle_blocks_the_attacker_not_the_owner(
    attacker: httpx.AsyncClient,
    owner: httpx.AsyncClient,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    await signup(client, app.app_id, "victim@example.com")
    for n in range(5):
        assert (
            await login(attacker, app.app_id, "victim@example.com", f"guess-{n}")
        ).status_code == 401
    locked = await login(attacker, app.app_id, "victim@example.com", "guess-6")
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1
    assert locked.json()["code"] == "too_many_requests"
    # Even the right password is refused from the attacker's address while locked ...
    assert (await login(attacker, app.app_id, "victim@example.com")).status_code == 429
    # ... but the owner, elsewhere, signs in fine.
    assert (await login(owner, app.app_id, "victim@example.com")).status_code == 200
    # Unknown accounts are throttled the same way (no enumeration through 429s).
    for n in range(5):
        await login(attacker, app.app_id, "nobody@example.com", f"guess-{n}")
    assert (await login(attacker, app.app_id, "nobody@example.com", "x" * 9)).status_code == 429
    async with services.router.app(app.app_id) as conn:
        throttled = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE event = 'auth.login' AND outcome = 'denied'"
            " AND details->>'reason' = 'throttled'"
        )
    assert throttled >= 2


async def test_throttles_are_per_app(
    attacker: httpx.AsyncClient,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
) -> None:
    a, b = provision(), provision()
    for app in (a, b):
        await signup(client, app.app_id, "shared@example.com")
    for n in range(6):
        await login(attacker, a.app_id, "shared@example.com", f"guess-{n}")
    assert (await login(attacker, a.app_id, "shared@example.com")).status_code == 429
    assert (await login(attacker, b.app_id, "shared@example.com")).status_code == 200


async def test_login_rehashes_outdated_parameters(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    async with services.router.app(app.app_id) as conn:
        await conn.execute(
            "INSERT INTO users (email, email_normalized, password_hash)"
            " VALUES ('old@example.com', 'old@example.com', $1)",
            weak,
        )
    assert (await login(client, app.app_id, "old@example.com")).status_code == 200
    async with services.router.app(app.app_id) as conn:
        stored = await conn.fetchval(
            "SELECT password_hash FROM users WHERE email_normalized = 'old@example.com'"
        )
    assert stored != weak
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert (await login(client, app.app_id, "old@example.com")).status_code == 200


async def test_every_event_lands_in_the_audit_log(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    tokens = await signup(client, app.app_id, "audited@example.com")
    await login(client, app.app_id, "audited@example.com", "not the password")
    second = (await login(client, app.app_id, "audited@example.com")).json()
    rotated = (await refresh(client, app.app_id, cid, tokens["refresh_token"])).json()
    await age_refresh_use(services, app.app_id, tokens["refresh_token"], 60)  # past the grace
    await refresh(client, app.app_id, cid, tokens["refresh_token"])  # replay
    await client.post(
        f"/apps/{app.app_id}/oauth/revoke",
        data={"token": second["refresh_token"], "client_id": cid},
    )
    third = (await login(client, app.app_id, "audited@example.com")).json()
    await client.post(
        f"/apps/{app.app_id}/v1/password",
        headers={"authorization": f"Bearer {third['access_token']}"},
        json={"current_password": PASSWORD, "new_password": "fresh passphrase 99"},
    )
    await client.post(
        f"/apps/{app.app_id}/v1/logout",
        headers={"authorization": f"Bearer {third['access_token']}", "x-request-id": "logout-req"},
    )
    assert rotated["access_token"]
    async with services.router.app(app.app_id) as conn:
        rows: list[Any] = await conn.fetch("SELECT * FROM audit_log ORDER BY id")
    seen = {(r["event"], r["outcome"]) for r in rows}
    for expected in [
        ("user.signup", "success"),
        ("auth.login", "success"),
        ("auth.login", "failure"),
        ("token.refresh", "success"),
        ("token.refresh_reuse", "denied"),
        ("token.revoke", "success"),
        ("user.password_change", "success"),
        ("auth.logout", "success"),
    ]:
        assert expected in seen, expected
    for row in rows:
        assert row["request_id"]
        assert row["ip_hash"]
        assert len(row["ip_hash"]) == 32
        assert row["occurred_at"] is not None
    logout = next(r for r in rows if r["event"] == "auth.logout")
    assert logout["request_id"] == "logout-req"
    assert logout["actor_type"] == "user"
    assert logout["target_type"] == "session"
    blob = " ".join(str(dict(r)) for r in rows)
    assert PASSWORD not in blob
    assert tokens["refresh_token"] not in blob
