"""The connection router: per-app role and search_path, transaction-local (B2)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.db.naming import quote_ident
from oneauth.db.pool import AppPools, create_app_pools, create_pool, default_shards, shard_sizes
from oneauth.db.router import Router, TransactionAborted, statement_tag
from oneauth.errors import AppNotFound
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.testing.postgres import ScratchDatabase

INSERT_USER = (
    "INSERT INTO users (email, email_normalized, password_hash) VALUES ($1, $1, 'x') RETURNING id"
)


async def test_same_email_in_two_apps_is_two_users(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    async with services.router.app(a.app_id) as conn:
        id_a = await conn.fetchval(INSERT_USER, "same@example.com")
    async with services.router.app(b.app_id) as conn:
        id_b = await conn.fetchval(INSERT_USER, "same@example.com")
    assert id_a != id_b
    for app in (a, b):
        async with services.router.app(app.app_id) as conn:
            rows = await conn.fetch("SELECT id FROM users")
            assert [r["id"] for r in rows] == [id_a if app is a else id_b]

    with ops.connect(settings.operator_url) as sync:
        lifecycle.delete(sync, a.app_id)
    services.registry.invalidate(a.app_id)
    with pytest.raises(AppNotFound):
        async with services.router.app(a.app_id):
            pass
    async with services.router.app(b.app_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 1


async def test_app_context_cannot_read_another_app_schema(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    a, b = provision(), provision()
    async with services.router.app(b.app_id) as conn:
        await conn.execute(INSERT_USER, "b@example.com")
    for query in (
        f"SELECT * FROM {b.names.schema}.users",
        f"INSERT INTO {b.names.schema}.users (email, email_normalized) VALUES ('x', 'x')",
        f"SELECT * FROM {b.names.schema}.audit_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with services.router.app(a.app_id) as conn:
                await conn.fetch(query)


async def test_no_app_context_reads_nothing(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    a = provision()
    async with services.pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch(f"SELECT * FROM {a.names.schema}.users")
        # And the control schema never leaks into an app context.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with services.router.app(a.app_id) as conn:
            await conn.fetch("SELECT * FROM oneauth.apps")


async def test_connection_is_clean_after_a_unit(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    a = provision()
    pool = services.pool
    async with services.pool.acquire() as conn:
        login_role = await conn.fetchval("SELECT current_user")
        default_path = await conn.fetchval("SELECT current_setting('search_path')")
    # Exhaust the pool's idle connections so the same ones are reused.
    for _ in range(pool.get_max_size() * 2):
        async with services.router.app(a.app_id) as conn:
            assert await conn.fetchval("SELECT current_user") == a.names.role
            assert await conn.fetchval("SELECT current_setting('search_path')") == (
                f'"{a.names.schema}"'
            )
    for _ in range(pool.get_max_size()):
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_user") == login_role
            assert await conn.fetchval("SELECT current_setting('search_path')") == default_path
            assert not conn.is_in_transaction()


async def test_exception_rolls_back_and_leaves_connection_clean(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    a = provision()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with services.router.app(a.app_id) as conn:
            await conn.execute(INSERT_USER, "gone@example.com")
            raise Boom
    async with services.router.app(a.app_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
    async with services.pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_user") != a.names.role
        assert not conn.is_in_transaction()


async def test_swallowed_error_does_not_pretend_to_commit(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    a = provision()
    with pytest.raises(TransactionAborted):
        async with services.router.app(a.app_id) as conn:
            await conn.execute(INSERT_USER, "kept@example.com")
            with contextlib.suppress(asyncpg.DivisionByZeroError):
                await conn.execute("SELECT 1/0")
    async with services.router.app(a.app_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0


@pytest.mark.parametrize("status", ["suspended", "deleted", "unknown", "invalid"])
async def test_router_fails_closed(
    services: Services, provision: Callable[..., AppRecord], settings: Settings, status: str
) -> None:
    if status == "invalid":
        app_id = "../x"
    elif status == "unknown":
        app_id = "never-provisioned"
    else:
        app_id = provision().app_id
        with ops.connect(settings.operator_url) as sync:
            if status == "suspended":
                lifecycle.set_status(sync, app_id, "suspended")
            else:
                lifecycle.delete(sync, app_id)
        services.registry.invalidate(app_id)
    with pytest.raises(AppNotFound):
        async with services.router.app(app_id):
            pytest.fail("an app query ran for a closed app")


async def test_connections_are_recycled_after_many_apps(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    apps = [provision() for _ in range(5)]
    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        router = Router(pool, services.registry, max_apps_per_connection=2)
        pids = []
        for app in apps:
            async with router.app(app.app_id) as conn:
                pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
        # One connection, replaced each time it exceeded two distinct schemas.
        assert len(set(pids)) >= 2
        assert pids[0] == pids[1]
    finally:
        await pool.close()


BY_EMAIL = "SELECT id FROM users WHERE email_normalized = $1"


async def test_an_app_keeps_its_plans_on_a_connection_it_shares_with_other_apps(
    services: Services,
    provision: Callable[..., AppRecord],
    settings: Settings,
    pg_admin_dsn: str,
    main_database: ScratchDatabase,
) -> None:
    """Postgres plans a prepared statement again whenever search_path is not the one
    it was planned under. From an app's third unit on a connection its texts are
    its own there (the tag), so after five custom plans and a generic one the app
    plans nothing, however often other apps' units run in between."""
    a, b = provision(), provision()
    users = {}
    for app in (a, b):
        async with services.router.app(app.app_id) as conn:
            users[app.app_id] = await conn.fetchval(INSERT_USER, "same@example.com")
    # The superuser only so that Postgres reports each planning to the client
    # (log_planner_stats); every unit still becomes its app's role.
    superuser = urlunsplit(urlsplit(pg_admin_dsn)._replace(path="/" + main_database.database))
    pool = await create_pool(
        replace(settings, database_url=superuser),
        min_size=1,
        max_size=1,
        statement_cache_size=100,
        server_settings={"log_planner_stats": "on", "client_min_messages": "log"},
    )
    try:
        router = Router(pool, services.registry)
        plans: list[list[int]] = []  # per round: plannings per app
        for _ in range(12):
            counts = []
            for app in (a, b):
                found, planned = await _planned(router, app, BY_EMAIL, "same@example.com")
                # The same text, another app: its own user, never the other's.
                assert found == users[app.app_id]
                counts.append(planned)
            plans.append(counts)
        # Two units on the shared text (planned each time), then five custom plans
        # and a generic one on the app's own, then that generic plan for good.
        assert plans[:2] == [[1, 1]] * 2, plans
        assert plans[-4:] == [[0, 0]] * 4, plans
        assert sum(map(sum, plans)) == 2 * (2 + 6), plans
        async with pool.acquire() as conn:
            texts = await conn.fetch(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%' || $1",
                BY_EMAIL,
            )
        assert sorted(t["statement"] for t in texts) == sorted(
            [BY_EMAIL] + [statement_tag(app.names) + BY_EMAIL for app in (a, b)]
        )
    finally:
        await pool.close()


async def test_a_full_statement_cache_keeps_no_further_app(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    """Apps get texts of their own only while the statement cache has room: one
    that cycled through more apps' statements than it holds would prepare every
    statement again, which costs more than planning it again."""
    kept, late = provision(), provision()
    pool = await create_pool(settings, min_size=1, max_size=1, statement_cache_size=8)
    try:
        router = Router(pool, services.registry)
        for _ in range(3):
            await _count_users(router, kept.app_id)
        async with router.app(kept.app_id) as conn:
            assert conn.oneauth_entered["tag"] == statement_tag(kept.names)
            for i in range(6):  # six statements of the kept app's: the cache is 3/4 full
                await conn.fetchval(f"SELECT {i} FROM users LIMIT 1")
        for _ in range(5):
            async with router.app(late.app_id) as conn:
                assert conn.oneauth_entered["tag"] is None
                assert await conn.fetchval("SELECT count(*) FROM users") == 0
        async with router.app(kept.app_id) as conn:
            assert conn.oneauth_entered["tag"] == statement_tag(kept.names)
            assert conn.oneauth_kept == {kept.app_id}
    finally:
        await pool.close()


async def _planned(router: Router, app: AppRecord, query: str, *args: object) -> tuple[object, int]:
    """The query's answer in the app's unit, and how often Postgres planned meanwhile."""
    messages: list[str] = []

    def heard(_conn: object, message: asyncpg.PostgresLogMessage) -> None:
        messages.append(str(message.message))

    async with router.app(app.app_id) as conn:
        conn.add_log_listener(heard)
        try:
            found = await conn.fetchval(query, *args)
        finally:
            conn.remove_log_listener(heard)
        assert await conn.fetchval("SELECT current_user") == app.names.role
    return found, sum("PLANNER STATISTICS" in m for m in messages)


def _apps_with_homes(apps: list[AppRecord], pools: AppPools) -> dict[int, AppRecord]:
    homes: dict[int, AppRecord] = {}
    for app in apps:
        homes.setdefault(pools.home(app.app_id), app)
    return homes


async def test_each_app_stays_on_its_home_shard(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    apps = [provision() for _ in range(6)]
    pools = await create_app_pools(
        replace(settings, pool_min_size=1, pool_max_size=3, pool_shards=3)
    )
    try:
        router = Router(pools, services.registry)
        backends: dict[str, set[int]] = {}
        for _ in range(3):
            for app in apps:
                async with router.app(app.app_id) as conn:
                    pid = await conn.fetchval("SELECT pg_backend_pid()")
                    backends.setdefault(app.app_id, set()).add(pid)
        # One connection per shard and nothing concurrent: an app always meets the
        # same backend, and apps with different homes meet different backends.
        assert all(len(pids) == 1 for pids in backends.values())
        homes = _apps_with_homes(apps, pools)
        assert len({next(iter(backends[a.app_id])) for a in homes.values()}) == len(homes)
        assert pools.borrowed == 0
    finally:
        await pools.close()


async def test_busy_home_shard_borrows_an_idle_connection(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    pools = await create_app_pools(
        replace(settings, pool_min_size=2, pool_max_size=2, pool_shards=2)
    )
    try:
        router = Router(pools, services.registry)
        app = provision()
        other = provision()
        home = pools.pools[pools.home(app.app_id)]
        async with router.app(app.app_id) as first:
            assert home.get_idle_size() == 0
            # Home is full: the second unit borrows the other shard's idle
            # connection instead of queueing, and is still confined to its app.
            async with router.app(app.app_id) as second:
                assert second is not first
                assert pools.borrowed == 1
                await second.execute(INSERT_USER, "borrowed@example.com")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with router.app(app.app_id) as third:
                    assert pools.borrowed == 2
                    await third.execute(f"SELECT 1 FROM {quote_ident(other.names.schema)}.users")
        async with router.app(other.app_id) as conn:
            assert await conn.fetchval("SELECT count(*) FROM users") == 0
        async with router.app(app.app_id) as conn:
            assert await conn.fetchval("SELECT count(*) FROM users") == 1
    finally:
        await pools.close()


async def test_no_borrowing_past_a_backends_app_bound(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    pools = await create_app_pools(
        replace(settings, pool_min_size=2, pool_max_size=2, pool_shards=2)
    )
    try:
        router = Router(pools, services.registry, max_apps_per_connection=1)
        homes: dict[int, AppRecord] = {}
        while len(homes) < 2:  # random app ids: provision until both shards are someone's home
            new = provision()
            homes.setdefault(pools.home(new.app_id), new)
        app, other = homes[0], homes[1]
        async with router.app(other.app_id):
            pass  # the other shard's only backend now holds its one app
        release = asyncio.Event()
        entered = asyncio.Event()

        async def hold() -> None:
            async with router.app(app.app_id):
                entered.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.wait_for(entered.wait(), 10)
        waiter = asyncio.create_task(_count_users(router, app.app_id))
        await asyncio.sleep(0.1)
        # The idle backend is full (it knows one app, the bound is one):
        # waiting for the home shard beats growing that backend's caches.
        assert not waiter.done()
        assert (pools.borrowed, pools.declined) == (0, 1)
        release.set()
        assert await asyncio.wait_for(waiter, 10) == 0
        await holder
    finally:
        await pools.close()


async def test_all_shards_busy_queues_for_the_first_usable_connection(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    pools = await create_app_pools(
        replace(settings, pool_min_size=2, pool_max_size=2, pool_shards=2)
    )
    try:
        router = Router(pools, services.registry)
        app = provision()
        releases = [asyncio.Event(), asyncio.Event()]
        inside = [asyncio.Event(), asyncio.Event()]

        async def hold(i: int) -> None:
            async with router.app(app.app_id):
                inside[i].set()
                await releases[i].wait()

        # The first unit takes the home shard's connection, the second borrows.
        holders = []
        for i in range(2):
            holders.append(asyncio.create_task(hold(i)))
            await asyncio.wait_for(inside[i].wait(), 10)
        assert pools.borrowed == 1
        assert sum(p.get_idle_size() for p in pools.pools) == 0
        waiter = asyncio.create_task(_count_users(router, app.app_id))
        await asyncio.sleep(0.1)
        assert not waiter.done()  # no connection anywhere: it queues, it does not fail
        assert pools.queued == 1
        # The borrowed connection frees first: the queued unit takes it
        # rather than waiting for its home shard, still held.
        releases[1].set()
        assert await asyncio.wait_for(waiter, 10) == 0
        assert not holders[0].done()
        releases[0].set()
        await asyncio.gather(*holders)
    finally:
        await pools.close()


async def _count_users(router: Router, app_id: str) -> int:
    async with router.app(app_id) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM users"))


def test_shard_sizes_split_evenly() -> None:
    assert shard_sizes(10, 5) == [2, 2, 2, 2, 2]
    assert shard_sizes(10, 4) == [3, 3, 2, 2]
    assert shard_sizes(1, 3) == [1, 0, 0]
    assert default_shards(10) == 10
    assert default_shards(1) == 1
