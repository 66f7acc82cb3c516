"""New backends are opened, and their role checks warmed, off the request path.

A backend's first role check lists every role the login role may become (259 ms
on PostgreSQL 15 with 10,000 app roles, measured). AppPools opens a replaced
connection in the background and its ``init`` runs that check, so that no
request pays it (oneauth.db.pool.warm_role_checks, AppPools.reopen).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from oneauth.apps.models import AppRecord
from oneauth.db.pool import AppPools, create_app_pools
from oneauth.db.router import Router
from oneauth.services import Services
from oneauth.settings import Settings

WARM = "pg_has_role(session_user, 'pg_monitor'"


async def _last_query(settings: Settings, pid: int) -> str:
    conn = await asyncpg.connect(settings.database_url)
    try:
        query: str = await conn.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await conn.close()
    return query


@contextlib.asynccontextmanager
async def _shards(settings: Settings, shards: int, **changes: Any) -> AsyncIterator[AppPools]:
    # Pools of their own, every shard one connection, open from the start.
    pools = await create_app_pools(
        replace(settings, pool_min_size=shards, pool_max_size=shards, pool_shards=shards, **changes)
    )
    try:
        yield pools
    finally:
        await pools.close()


async def _idle_backend(pools: AppPools, shard: int) -> int:
    # Taken straight from the shard's asyncpg pool: no unit, no query sent.
    pool = pools.pools[shard]
    conn = await pool.acquire()
    try:
        pid: int = conn.get_server_pid()
    finally:
        await pool.release(conn)
    return pid


@pytest.mark.parametrize("why", ["apps_per_connection", "max_queries"])
async def test_a_replaced_connection_is_opened_and_warmed_before_any_unit_uses_it(
    why: str, services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    max_apps, changes = 1, {}
    if why == "max_queries":
        # The warm-up, then 3 per unit (enter, the select, COMMIT): the second
        # unit's release passes 5.
        max_apps, changes = 256, {"pool_max_queries": 5}
    async with _shards(settings, 1, **changes) as pools:
        router = Router(pools, services.registry, max_apps_per_connection=max_apps)
        first = await _idle_backend(pools, 0)
        assert WARM in await _last_query(settings, first)  # warmed when opened
        async with router.enter(a) as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == first
        # A second app on it (past max_apps_per_connection=1), or past its
        # max_queries: it is closed at this unit's release.
        async with router.enter(b) as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == first
        await pools.settled()
        assert pools.reopened == 1
        replacement = await _idle_backend(pools, 0)
        assert replacement != first
        # Its last statement is the warm-up: no unit has run on it yet, it was
        # opened by the pools, not by the next unit that needed it.
        assert WARM in await _last_query(settings, replacement)
        async with router.enter(a) as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == replacement
            assert await conn.fetchval("SELECT current_user") == a.names.role


async def test_a_shard_being_reopened_is_busy_so_its_apps_borrow_instead_of_opening_it(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    async with _shards(settings, 2) as pools:
        app = next(a for a in (provision() for _ in range(20)) if pools.home(a.app_id) == 0)
        router = Router(pools, services.registry)
        other = await _idle_backend(pools, 1)
        # Shard 0 loses its connection (closed the way asyncpg's max_queries does).
        conn = await pools.pools[0].acquire()
        await conn.close()
        await pools.pools[0].release(conn)
        assert pools.pools[0].get_size() == 0
        pools.reopen(pools.pools[0])
        async with router.enter(app) as conn:
            # The unit did not open shard 0 itself: it borrowed shard 1's backend.
            assert await conn.fetchval("SELECT pg_backend_pid()") == other
        assert pools.borrowed == 1
        await pools.settled()
        assert pools.pools[0].get_size() == 1
        assert WARM in await _last_query(settings, await _idle_backend(pools, 0))


async def test_a_broken_connection_is_not_reopened_by_the_pools(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    # A connection terminated (Q1: COMMIT's outcome unknown, a lost server) may
    # mean Postgres is away: the next unit that needs one reconnects, and answers
    # its own error if that fails, rather than a retry in the background.
    app = provision()
    async with _shards(settings, 1) as pools:
        pool, conn = await pools.acquire(app.app_id, max_apps=256)
        conn.terminate()
        await pools.release(pool, conn)
        await pools.settled()
        assert (pools.reopened, pool.get_size()) == (0, 0)
        async with Router(pools, services.registry).enter(app) as conn:
            assert await conn.fetchval("SELECT 1") == 1


async def test_the_service_opens_every_shard_at_start(services: Services) -> None:
    pools = services.router.pools
    await pools.settled()
    assert [p.get_size() for p in pools.pools] == [p.get_max_size() for p in pools.pools]


async def test_after_a_membership_change_idle_connections_redo_their_role_check(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a = provision()
    async with _shards(settings, 2) as pools:
        router = Router(pools, services.registry)
        async with router.enter(a) as conn:  # one backend's last statement: COMMIT
            busy_one = conn.get_server_pid()
        provision()  # a new app role, granted to the login role: every list dropped
        pools.rewarm()
        pools.rewarm()  # a second notice during the pass: one more pass after it
        await pools.settled()
        assert pools.rewarm_passes == 2
        assert pools.reopened == 0
        # The same backends, each with the check as its last statement.
        assert {await _idle_backend(pools, 0), await _idle_backend(pools, 1)} >= {busy_one}
        for shard in (0, 1):
            assert WARM in await _last_query(settings, await _idle_backend(pools, shard))


async def test_the_service_redoes_role_checks_on_a_registry_notice(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    pools = services.router.pools
    await pools.settled()
    pools.rewarmed.clear()
    passes = pools.rewarm_passes
    provision()  # its registry row's notice reaches the listener
    await asyncio.wait_for(pools.rewarmed.wait(), 10)
    assert pools.rewarm_passes > passes
