"""P8/P3: the login throttle reserves an attempt before argon2 runs (issue 10, item 3).

Bursts of concurrent guesses go through the real HTTP API (or two service
instances sharing the database, as two processes would); the only
instrumentation is a counter around the hasher's verify, so the tests count
how many guesses were really checked against the stored hash.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from apiclient import PASSWORD, login, signup
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.identity import throttle
from oneauth.identity.passwords import PasswordHasher
from oneauth.services import Services
from oneauth.settings import Settings

ATTACKER = ("203.0.113.66", 4000)
OWNER = ("198.51.100.30", 5000)
BURST = 60


class VerifyCounter:
    """Counts argon2 verifies run by one or more hashers (a counter, not a mock)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def wrap(self, hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> None:
        real = hasher.verify_sync

        def counted(encoded_hash: str, password: str) -> bool:
            with self._lock:
                self.calls += 1
            return real(encoded_hash, password)

        # verify, verify_and_rehash and verify_dummy all end in verify_sync.
        monkeypatch.setattr(hasher, "verify_sync", counted)


@pytest.fixture
def verifies(services: Services, monkeypatch: pytest.MonkeyPatch) -> VerifyCounter:
    counter = VerifyCounter()
    counter.wrap(services.hasher, monkeypatch)
    return counter


@asynccontextmanager
async def client_at(app: Starlette, peer: tuple[str, int]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=peer)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def burst(http: httpx.AsyncClient, app_id: str, email: str, n: int) -> list[int]:
    responses = await asyncio.gather(
        *(login(http, app_id, email, f"wrong-guess-{i}") for i in range(n))
    )
    return [r.status_code for r in responses]


async def test_concurrent_guesses_verify_at_most_the_pair_allowance(
    service: Starlette,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    verifies: VerifyCounter,
) -> None:
    app, other = provision(), provision()
    for each in (app, other):
        await signup(client, each.app_id, "burst@example.com")
    verifies.calls = 0
    async with client_at(service, ATTACKER) as attacker:
        statuses = await burst(attacker, app.app_id, "burst@example.com", BURST)
        verified = verifies.calls
        # The same address and email at another app: its own counters, untouched.
        assert (await login(attacker, other.app_id, "burst@example.com")).status_code == 200
    print(f"\n{BURST} concurrent wrong passwords: {verified} argon2 verifies ran")
    assert verified <= throttle.PAIR.free, verified
    assert statuses.count(401) == verified  # every verified guess was a 401 ...
    assert set(statuses) <= {401, 429}  # ... and every other one a 429, never a 5xx
    assert statuses.count(401) >= 1


async def test_unknown_account_burst_is_bounded_the_same_way(
    service: Starlette,
    provision: Callable[..., AppRecord],
    verifies: VerifyCounter,
) -> None:
    app = provision()
    async with client_at(service, ATTACKER) as attacker:
        statuses = await burst(attacker, app.app_id, "nobody-here@example.com", 30)
    assert verifies.calls <= throttle.PAIR.free
    assert set(statuses) <= {401, 429}


async def test_a_burst_from_one_address_does_not_lock_the_owner_elsewhere(
    service: Starlette,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    verifies: VerifyCounter,
) -> None:
    app = provision()
    await signup(client, app.app_id, "owner@example.com")
    async with client_at(service, ATTACKER) as attacker:
        await burst(attacker, app.app_id, "owner@example.com", BURST)
        # Sequential guesses after the burst (the lock is short at first) too.
        for i in range(throttle.ACCOUNT.free):
            await login(attacker, app.app_id, "owner@example.com", f"more-{i}")
    async with client_at(service, OWNER) as owner:
        r = await login(owner, app.app_id, "owner@example.com")
    assert r.status_code == 200, r.text


async def test_concurrent_guesses_across_two_processes_share_one_allowance(
    service: Starlette,
    settings: Settings,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    verifies: VerifyCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = provision()
    await signup(client, app.app_id, "two-procs@example.com")
    verifies.calls = 0
    other = create_app(settings, configure_logging=False)  # its own pool, hasher, caches
    async with other.router.lifespan_context(other):
        other_services = other.state.services
        assert isinstance(other_services, Services)
        verifies.wrap(other_services.hasher, monkeypatch)
        async with client_at(service, ATTACKER) as one, client_at(other, ATTACKER) as two:
            results = await asyncio.gather(
                burst(one, app.app_id, "two-procs@example.com", BURST // 2),
                burst(two, app.app_id, "two-procs@example.com", BURST // 2),
            )
    statuses = [s for part in results for s in part]
    assert verifies.calls <= throttle.PAIR.free, verifies.calls
    assert set(statuses) <= {401, 429}


async def _session(client: httpx.AsyncClient, app: AppRecord, email: str) -> str:
    tokens = await signup(client, app.app_id, email)
    token = tokens["access_token"]
    assert isinstance(token, str)
    return token


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/password", {"current_password": "wrong", "new_password": "fresh passphrase 99"}),
        ("/v1/email/change", {"new_email": "elsewhere@example.com", "password": "wrong"}),
    ],
)
async def test_password_change_and_email_change_reserve_the_same_way(
    service: Starlette,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    verifies: VerifyCounter,
    path: str,
    body: dict[str, Any],
) -> None:
    app = provision()
    email = f"reauth-{path.strip('/').replace('/', '-')}@example.com"
    access = await _session(client, app, email)
    verifies.calls = 0
    headers = {"authorization": f"Bearer {access}"}
    async with client_at(service, ATTACKER) as attacker:
        responses = await asyncio.gather(
            *(
                attacker.post(f"/apps/{app.app_id}{path}", headers=headers, json=body)
                for _ in range(BURST // 2)
            )
        )
        statuses = [r.status_code for r in responses]
        assert verifies.calls <= throttle.PAIR.free, verifies.calls
        assert set(statuses) <= {401, 429}, statuses
        # They share the login's counters: the address is locked for login too ...
        assert (await login(attacker, app.app_id, email)).status_code == 429
    # ... but not the owner elsewhere.
    async with client_at(service, OWNER) as owner:
        assert (await login(owner, app.app_id, email, PASSWORD)).status_code == 200
