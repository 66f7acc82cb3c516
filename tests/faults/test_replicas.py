"""Several replicas on one database (Q4).

Two real ``oneauth serve`` processes share one database. A change made through
one (or by the CLI, as an operator would) is enforced by the other within
``PROPAGATION`` seconds: the change notice (LISTEN/NOTIFY) drops the caches of
every replica at once; while a listener cannot hear notices every cache is
flushed each ``ONEAUTH_LISTEN_FALLBACK_TTL`` (N2). Throttle
counters live in the database, so they are shared from the first attempt.
SIGTERM drains a replica's in-flight requests (no 5xx) while the other serves.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from oidc._support import exchange, register, sign_in
from oneauth.db import ops
from oneauth.localpg import free_port
from oneauth.oauth import clients

from .load import Load, check_chains
from .rig import PASSWORD, Rig, Server
from .test_pool_exhaustion import _waiting_for_locks

PROPAGATION = 2.0  # seconds: what the NOTIFY path must achieve (documented bound: the TTLs)


@dataclass
class Pair:
    a: Server
    b: Server


@pytest.fixture(scope="module")
def pair(shared_rig: Rig) -> Iterator[Pair]:
    # One issuer for both, as behind a load balancer: the public URL is A's.
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    a = shared_rig.serve(port=port, public_url=public)
    b = shared_rig.serve(public_url=public)
    yield Pair(a, b)
    shared_rig.stop_servers()


async def _within(seconds: float, check: Callable[[], Awaitable[bool]]) -> float:
    """Poll ``check`` until it holds; the time it took (fails past ``seconds``)."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not enforced within {seconds} s")
        await asyncio.sleep(0.05)


def _kid(jwt: str) -> str:
    header = jwt.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


async def _signup(http: httpx.AsyncClient, rig: Rig, email: str) -> dict[str, str]:
    r = await http.post(
        f"/apps/{rig.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    body: dict[str, str] = r.json()
    return body


async def _refresh(http: httpx.AsyncClient, rig: Rig, token: str) -> httpx.Response:
    return await http.post(
        f"/apps/{rig.app_id}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": rig.client_id},
    )


async def test_a_throttle_counted_at_one_replica_holds_at_the_other(
    shared_rig: Rig, pair: Pair
) -> None:
    rig = shared_rig
    email = f"guessed-{time.monotonic_ns()}@example.com"
    async with (
        httpx.AsyncClient(base_url=pair.a.base, timeout=30) as a,
        httpx.AsyncClient(base_url=pair.b.base, timeout=30) as b,
    ):
        await _signup(a, rig, email)
        # Five free guesses for one address from one IP, spread over both replicas.
        for http in (a, b, a, b, a):
            r = await http.post(
                f"/apps/{rig.app_id}/v1/login", json={"email": email, "password": "wrong-Guess-1"}
            )
            assert r.status_code == 401, r.text
        # The five are used up: even the right password is refused, at either replica.
        for http in (a, b):
            r = await http.post(
                f"/apps/{rig.app_id}/v1/login", json={"email": email, "password": PASSWORD}
            )
            assert r.status_code == 429, r.text
            assert r.headers.get("retry-after")


async def test_a_suspension_reaches_every_replica(shared_rig: Rig, pair: Pair) -> None:
    rig = shared_rig
    url = f"/apps/{rig.app_id}/v1/app"
    async with (
        httpx.AsyncClient(base_url=pair.a.base, timeout=10) as a,
        httpx.AsyncClient(base_url=pair.b.base, timeout=10) as b,
    ):
        for http in (a, b):  # both have the app cached
            assert (await http.get(url)).status_code == 200
        await asyncio.to_thread(rig.cli, "apps", "suspend", rig.app_id)
        try:
            for http in (a, b):

                async def refused(http: httpx.AsyncClient = http) -> bool:
                    r = await http.get(url)
                    # A suspended app looks unknown from outside (fail closed).
                    return r.status_code == 404

                await _within(PROPAGATION, refused)
        finally:
            await asyncio.to_thread(rig.cli, "apps", "resume", rig.app_id)
        for http in (a, b):

            async def served(http: httpx.AsyncClient = http) -> bool:
                return (await http.get(url)).status_code == 200

            await _within(PROPAGATION, served)


async def test_a_key_rotation_reaches_every_replica(shared_rig: Rig, pair: Pair) -> None:
    rig = shared_rig
    async with (
        httpx.AsyncClient(base_url=pair.a.base, timeout=30) as a,
        httpx.AsyncClient(base_url=pair.b.base, timeout=30) as b,
    ):
        tokens = await _signup(a, rig, f"keys-{time.monotonic_ns()}@example.com")
        before = _kid(tokens["access_token"])
        jwks = (await b.get(f"/apps/{rig.app_id}/.well-known/jwks.json")).json()
        assert before in {k["kid"] for k in jwks["keys"]}
        refresh = tokens["refresh_token"]
        await asyncio.to_thread(rig.cli, "keys", "rotate", "--force", rig.app_id)
        holder = {"refresh": refresh, "access": ""}

        async def signs_with_new_key() -> bool:
            r = await _refresh(a, rig, holder["refresh"])
            assert r.status_code == 200, r.text
            holder["refresh"], holder["access"] = (
                r.json()["refresh_token"],
                r.json()["access_token"],
            )
            return _kid(holder["access"]) != before

        await _within(PROPAGATION, signs_with_new_key)
        # B accepts what A now signs, and publishes the new key.
        me = await b.get(
            f"/apps/{rig.app_id}/v1/me", headers={"authorization": f"Bearer {holder['access']}"}
        )
        assert me.status_code == 200, me.text
        jwks = (await b.get(f"/apps/{rig.app_id}/.well-known/jwks.json")).json()
        assert _kid(holder["access"]) in {k["kid"] for k in jwks["keys"]}


async def test_a_deleted_client_is_refused_by_every_replica(shared_rig: Rig, pair: Pair) -> None:
    rig = shared_rig
    with (
        ops.connect(rig.operator_dsn) as conn,
        conn.transaction(),
        ops.app_context(conn, rig.names),
    ):
        made, secret = clients.create(
            conn,
            clients.ClientSpec(
                name="Doomed",
                kind="confidential",
                grant_types=frozenset({"client_credentials"}),
                scopes=frozenset({"orders:read"}),
            ),
        )
    assert secret is not None
    form = {"grant_type": "client_credentials", "scope": "orders:read"}
    url = f"/apps/{rig.app_id}/oauth/token"
    async with (
        httpx.AsyncClient(base_url=pair.a.base, timeout=10) as a,
        httpx.AsyncClient(base_url=pair.b.base, timeout=10) as b,
    ):
        for http in (a, b):  # cached by both
            r = await http.post(url, data=form, auth=(made.client_id, secret))
            assert r.status_code == 200, r.text
        await asyncio.to_thread(
            rig.cli, "clients", "delete", "--app", rig.app_id, "--yes", made.client_id
        )
        for http in (a, b):

            async def refused(http: httpx.AsyncClient = http) -> bool:
                r = await http.post(url, data=form, auth=(made.client_id, secret))
                return r.status_code == 401 and r.json()["error"] == "invalid_client"

            await _within(PROPAGATION, refused)


async def test_a_consent_withdrawn_at_one_replica_ends_the_clients_tokens_at_the_other(
    shared_rig: Rig, pair: Pair
) -> None:
    rig = shared_rig
    settings = rig.settings()
    app = type("App", (), {"names": rig.names})()
    client_id, _ = register(settings, app)
    email = f"consent-{time.monotonic_ns()}@example.com"
    async with (
        httpx.AsyncClient(base_url=pair.a.base, timeout=30) as a,
        httpx.AsyncClient(base_url=pair.b.base, timeout=30) as b,
    ):
        first_party = await _signup(a, rig, email)
        flow = await sign_in(a, rig.app_id, client_id, email)
        tokens = await exchange(a, rig.app_id, client_id, flow.code, flow.verifier)
        assert tokens.status_code == 200, tokens.text
        third = tokens.json()
        form = {"grant_type": "refresh_token", "client_id": client_id}
        r = await b.post(
            f"/apps/{rig.app_id}/oauth/token",
            data={**form, "refresh_token": third["refresh_token"]},
        )
        assert r.status_code == 200, r.text
        live = r.json()
        gone = await a.delete(
            f"/apps/{rig.app_id}/v1/consents/{client_id}",
            headers={"authorization": f"Bearer {first_party['access_token']}"},
        )
        assert gone.status_code == 204, gone.text
        r = await b.post(
            f"/apps/{rig.app_id}/oauth/token", data={**form, "refresh_token": live["refresh_token"]}
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_grant"
        info = await b.get(
            f"/apps/{rig.app_id}/oauth/userinfo",
            headers={"authorization": f"Bearer {live['access_token']}"},
        )
        assert info.status_code == 401, info.text


async def test_sigterm_drains_in_flight_requests_while_the_other_replica_serves(
    shared_rig: Rig, pair: Pair
) -> None:
    rig = shared_rig
    leaving = rig.serve(public_url=pair.a.base)
    load = Load(rig, leaving.base)
    await load.prepare(chains=4, users=0)

    async def refresh(token: str) -> httpx.Response | str:
        async with httpx.AsyncClient(base_url=leaving.base, timeout=30) as http:
            try:
                return await _refresh(http, rig, token)
            except httpx.TransportError as exc:
                return type(exc).__name__

    with rig.in_app() as lock:
        lock.execute("LOCK TABLE refresh_tokens IN ACCESS EXCLUSIVE MODE")
        held = [asyncio.create_task(refresh(c.token)) for c in load.chains]
        await _waiting_for_locks(rig, len(load.chains))
        exited = asyncio.create_task(asyncio.to_thread(leaving.terminate, 30.0))
        await asyncio.sleep(0.5)
        assert not exited.done(), "the replica exited with requests in flight"
        # It takes no new connections; the other replica still serves.
        async with httpx.AsyncClient(base_url=pair.b.base, timeout=10) as other:
            r = await other.get(f"/apps/{rig.app_id}/v1/app")
            assert r.status_code == 200
    results = await asyncio.gather(*held)
    for chain, got in zip(load.chains, results, strict=True):
        assert isinstance(got, httpx.Response), got
        assert got.status_code == 200, got.text
        chain.token = got.json()["refresh_token"]
    # uvicorn re-raises the SIGTERM it caught once the drain is done.
    assert await exited in (0, -signal.SIGTERM)
    assert "Traceback" not in leaving.tail(100_000)
    check_chains(load)
