"""The sealer's rounds take turns under one lease per installation (oneauth.db.lease):
the holder sweeps every app, the others wait, and take over when it stops cleanly
(at once) or dies (when the lease expires)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from oneauth.apps.models import AppRecord
from oneauth.auditchain import sealer as sealer_module
from oneauth.auditchain.sealer import Sealer
from oneauth.db import lease
from oneauth.services import Services

from ._helpers import ids, make_sealer, verify, write


def _count_rounds(sealer: Sealer) -> list[int]:
    """Wrap the sealer's sweep: the list grows by one per round it sweeps."""
    rounds: list[int] = []
    sweep = sealer.sweep

    async def counted() -> list[str]:
        rounds.append(1)
        return await sweep()

    sealer.sweep = counted  # type: ignore[method-assign]
    return rounds


async def _expire(services: Services) -> None:
    # Whatever an earlier test left: every test starts with the lease free.
    await services.pool.execute(
        "UPDATE oneauth.leases SET until = now() WHERE name = $1", sealer_module.LEASE
    )


async def _sealed(services: Services, app: AppRecord, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while await ids(services, app, "audit_chain") != await ids(services, app):
        assert asyncio.get_running_loop().time() < deadline, "not sealed in time"
        await asyncio.sleep(0.1)


async def test_one_sealer_sweeps_and_another_takes_over_when_it_stops(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    await _expire(services)
    shop, blog = provision(), provision()
    first = make_sealer(services, interval=0.1, lease_seconds=60.0)
    second = make_sealer(services, interval=0.1, lease_seconds=60.0)
    rounds = {id(first): _count_rounds(first), id(second): _count_rounds(second)}
    await first.start()
    await second.start()
    try:
        await write(services, shop, 3)
        await write(services, blog, 2)
        await _sealed(services, shop, 60)
        await _sealed(services, blog, 60)
        await asyncio.sleep(0.5)  # several more rounds of both
        # One of them swept every round, and sealed both apps; the other never swept.
        swept = [s for s in (first, second) if rounds[id(s)]]
        assert len(swept) == 1, [len(r) for r in rounds.values()]
        leader = swept[0]
        follower = second if leader is first else first
        assert len(rounds[id(leader)]) >= 3
        # A clean stop releases the lease: the other takes over at its next round,
        # long before the 60 s the lease would still have held.
        await leader.stop()
        await write(services, shop, 2)
        await _sealed(services, shop, 20)
        assert rounds[id(follower)]
        for app in (shop, blog):  # each app's own chain, whichever sealer linked it
            report = await verify(services, app)
            assert report.ok, report.problems
    finally:
        await first.stop()
        await second.stop()


async def test_a_dead_holders_lease_holds_until_it_expires(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    await _expire(services)
    app = provision()
    # A holder that died without releasing: its lease runs for 4 more seconds (2 s
    # once ran out on a loaded machine before the check below).
    assert await lease.try_lead(services.pool, sealer_module.LEASE, "dead-host:1:00", 4.0)
    sealer = make_sealer(services, interval=0.1, lease_seconds=60.0)
    rounds = _count_rounds(sealer)
    await write(services, app, 2)
    await sealer.start()
    try:
        await asyncio.sleep(0.5)
        assert not rounds  # tried the lease several times, never swept
        await _sealed(services, app, 60)
        assert rounds
        holder = await services.pool.fetchval(
            "SELECT holder FROM oneauth.leases WHERE name = $1", sealer_module.LEASE
        )
        assert holder != "dead-host:1:00"
    finally:
        await sealer.stop()
    # Released at the stop: anyone may take it now.
    assert await lease.try_lead(services.pool, sealer_module.LEASE, "next-host:2:00", 1.0)
    await _expire(services)


async def test_a_long_round_renews_its_lease_and_stops_when_it_was_taken(
    services: Services, provision: Callable[..., AppRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _expire(services)
    for app in (provision(), provision()):
        await write(services, app, 1)  # never visited: both are picked
    monkeypatch.setattr(sealer_module, "SWEEP_CHUNK", 1)  # the lease is renewed after each app

    def counting(sealer: Sealer) -> list[str]:
        visited: list[str] = []
        visit = sealer._visit

        async def counted(app: AppRecord, counter: int) -> None:
            visited.append(app.app_id)
            await visit(app, counter)

        sealer._visit = counted  # type: ignore[method-assign]
        return visited

    holding = make_sealer(services, lease_seconds=60.0)
    visited = counting(holding)
    assert await holding.lead()
    await holding.sweep()
    assert len(visited) >= 2  # renewed after every app, the round went on
    assert await holding.lead()  # still its own
    await holding.stop()  # released

    robbed = make_sealer(services, lease_seconds=60.0)
    visited = counting(robbed)
    await write(services, provision(), 1)
    await write(services, provision(), 1)
    assert await robbed.lead()
    # Another sealer takes it while the round is under way (the lease expired).
    await services.pool.execute(
        "UPDATE oneauth.leases SET holder = 'thief:1:00' WHERE name = $1", sealer_module.LEASE
    )
    await robbed.sweep()
    assert len(visited) == 1  # the first chunk, then the renewal failed: it left the rest
    assert not await robbed.lead()
    await robbed.stop()
    await _expire(services)
