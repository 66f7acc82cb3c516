"""Pool exhaustion: a bounded wait, then 503 with Retry-After; health still answers (Q3).

No test hook in the service: Postgres itself is made slow. A long lock on the
app's ``refresh_tokens`` (what a careless migration or a stuck batch job does)
holds every refresh in flight, so each holds its connection; with two app
connections, the next requests find none and must be refused after
``ONEAUTH_POOL_ACQUIRE_TIMEOUT``, not queue without end. ``/healthz`` needs no
connection and ``/readyz`` has the control pool of its own: both keep answering.
When the lock goes, the held requests complete and the service serves again.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from .load import Load
from .rig import Rig

ACQUIRE_TIMEOUT = 1.0


async def _waiting_for_locks(rig: Rig, count: int) -> None:
    deadline = time.monotonic() + 10
    seen = 0
    while time.monotonic() < deadline:
        with rig.operator() as conn:
            row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
        seen = row[0] if row is not None else 0
        if seen >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{seen} backends waiting for the lock, expected {count}")


async def test_an_exhausted_pool_refuses_fast_and_health_answers(rig: Rig) -> None:
    server = rig.serve(pool_min_size=1, pool_max_size=2, pool_acquire_timeout=ACQUIRE_TIMEOUT)
    load = Load(rig, server.base)
    await load.prepare(chains=6, users=0)
    held_chains, queued_chains = load.chains[:2], load.chains[2:]

    async def refresh(http: httpx.AsyncClient, token: str) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        r = await http.post(
            f"/apps/{rig.app_id}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": token,
                "client_id": rig.client_id,
            },
        )
        return r, time.monotonic() - started

    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        with rig.in_app() as lock:
            lock.execute("LOCK TABLE refresh_tokens IN ACCESS EXCLUSIVE MODE")
            held = [asyncio.create_task(refresh(http, c.token)) for c in held_chains]
            await _waiting_for_locks(rig, 2)
            queued = await asyncio.gather(*(refresh(http, c.token) for c in queued_chains))
            for r, took in queued:
                assert r.status_code == 503, r.text
                assert r.headers.get("retry-after"), r.headers
                assert r.json()["code"] == "service_unavailable"
                # Waited about the bound, no longer (and did not fail at once either).
                assert ACQUIRE_TIMEOUT * 0.8 <= took < ACQUIRE_TIMEOUT + 2.0, took
            for probe in ("/healthz", "/readyz"):
                started = time.monotonic()
                r = await http.get(probe)
                assert r.status_code == 200, (probe, r.text)
                assert time.monotonic() - started < 1.0, probe
            assert not any(t.done() for t in held)
        # The lock is gone (the transaction ended): the held refreshes complete.
        for (r, _), chain in zip(await asyncio.gather(*held), held_chains, strict=True):
            assert r.status_code == 200, r.text
            chain.token = r.json()["refresh_token"]
        # The refused ones were refused before touching their tokens: all still usable.
        for chain in load.chains:
            r, _ = await refresh(http, chain.token)
            assert r.status_code == 200, r.text
        metrics = (await http.get("/metrics")).text
    name = "oneauth_pool_acquire_timeouts_total"
    line = next(ln for ln in metrics.splitlines() if ln.startswith(name))
    assert float(line.split()[-1]) >= len(queued_chains)
