"""The service behind a real PgBouncer 1.18 in transaction mode (N1, N2, N3).

Debian's pgbouncer, started here in front of the test server. What breaks through
a transaction pooler, and what we do about it:

* LISTEN: the notices go to a server connection that is handed to other
  clients; the LISTEN connection goes direct (``ONEAUTH_LISTEN_DATABASE_URL``),
  and a LISTEN URL that turns out to be pooled is detected by the notifier's
  self-test, which falls back to flushing caches every ``listen_fallback_ttl``.
* Named prepared statements (asyncpg's statement cache) before PgBouncer 1.21:
  ``ONEAUTH_DATABASE_STATEMENT_CACHE_SIZE=0``.
* Session-level advisory locks stay on whichever server connection ran the
  statement: the retention cycle's leader is a lease row instead (R3).

`make test` also runs a named subset of the HTTP tests with
``TEST_THROUGH_PGBOUNCER=1`` (conftest.py): every test service's pools through
one pgbouncer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace

import asyncpg
import httpx
import pytest

from bouncer import PgBouncer, server_of
from conftest import ScratchDatabase
from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.apps.registry import CHANNEL as REGISTRY_CHANNEL
from oneauth.asgi import create_app
from oneauth.db import ops
from oneauth.db.notify import Notifier
from oneauth.db.pool import create_pool
from oneauth.retention import state as retention_state
from oneauth.services import Services
from oneauth.settings import Settings, SettingsError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def bouncer(
    main_database: ScratchDatabase, session_bouncer: PgBouncer | None
) -> Iterator[PgBouncer]:
    """The session's pgbouncer when the whole run goes through one, else our own."""
    if session_bouncer is not None:
        yield session_bouncer
        return
    own = PgBouncer(*server_of(main_database.service_dsn)).start()
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="module")
def pooled(settings: Settings, bouncer: PgBouncer) -> Settings:
    """The session's settings with the pools through pgbouncer, LISTEN direct."""
    direct = settings.listen_database_url or settings.database_url
    return replace(
        settings,
        database_url=bouncer.route(direct),
        listen_database_url=direct,
        database_statement_cache_size=0,
        operator_database_url=bouncer.route(settings.operator_url),
    )


@contextlib.asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, app.state.services


def _status_is(client: httpx.AsyncClient, path: str, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await client.get(path)).status_code == status

    return check


def _xacts(bouncer: PgBouncer, database: str) -> int:
    rows = bouncer.admin("SHOW STATS")
    return sum(int(row[1] or 0) for row in rows if row[0] == database)


async def _until(predicate: Callable[[], Awaitable[bool]], seconds: float) -> float:
    """Seconds until ``predicate()`` is true; fails after ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {seconds} s")


async def test_requests_go_through_pgbouncer_in_transaction_mode(
    pooled: Settings, bouncer: PgBouncer, provision: Callable[..., AppRecord]
) -> None:
    database = pooled.database_url.rsplit("/", 1)[1]
    assert ("pool_mode", "transaction") in [r[:2] for r in bouncer.admin("SHOW CONFIG")]
    app = provision()
    before = _xacts(bouncer, database)
    async with _serving(replace(pooled, pool_max_size=4)) as (client, services):
        for _ in range(5):
            assert (await client.get(f"/apps/{app.app_id}/v1/app")).status_code == 200
            jwks = await client.get(f"/apps/{app.app_id}/.well-known/jwks.json")
            assert jwks.status_code == 200
        assert services.notifier.listening  # the direct LISTEN connection passed its self-test
    assert _xacts(bouncer, database) > before


async def test_registry_change_through_pgbouncer_reaches_the_listener(
    pooled: Settings, provision: Callable[..., AppRecord]
) -> None:
    """N1: a suspension committed through pgbouncer (the operator's connection is
    pooled too) drops the service's cached entry by NOTIFY, not by TTL: the TTLs
    here are 300 s and the change must show within 2 s."""
    app = provision()
    slow = replace(pooled, registry_cache_ttl=300.0, listen_fallback_ttl=300.0)
    path = f"/apps/{app.app_id}/v1/app"
    async with _serving(slow) as (client, _):
        assert (await client.get(path)).status_code == 200  # cached now
        with ops.connect(pooled.operator_url) as conn:  # through pgbouncer
            lifecycle.set_status(conn, app.app_id, "suspended")
        await _until(_status_is(client, path, 404), 2.0)
        with ops.connect(pooled.operator_url) as conn:
            lifecycle.set_status(conn, app.app_id, "active")
        await _until(_status_is(client, path, 200), 2.0)


async def test_listen_through_pgbouncer_is_detected_and_caches_fall_back_to_the_ttl(
    pooled: Settings,
) -> None:
    """N2: LISTEN through a transaction pooler succeeds but never delivers; the
    notifier's self-test notices, and cache subscribers are flushed each
    fallback_ttl instead (workers are not: their sweep is their fallback)."""
    flushed: list[str | None] = []
    woken: list[str | None] = []
    notifier = Notifier(pooled.database_url, fallback_ttl=0.5)  # the pooled URL: wrong
    notifier.subscribe(REGISTRY_CHANNEL, flushed.append, cache=True)
    notifier.subscribe("oneauth_test_worker", woken.append)
    await notifier.start(wait=10)
    try:
        assert not notifier.listening
        await asyncio.sleep(1.3)
        assert notifier.flushes >= 2
        assert flushed.count(None) >= 2
        assert woken == []
    finally:
        await notifier.stop()

    direct = Notifier(pooled.listen_url, fallback_ttl=0.5)
    direct.subscribe(REGISTRY_CHANNEL, flushed.append, cache=True)
    await direct.start(wait=10)
    try:
        assert direct.listening
        flushed.clear()
        conn = await asyncpg.connect(pooled.database_url, statement_cache_size=0)
        try:  # a NOTIFY sent through pgbouncer reaches the direct listener
            await conn.execute(f"NOTIFY {REGISTRY_CHANNEL}, 'some-app'")
        finally:
            await conn.close()

        async def arrived() -> bool:
            return "some-app" in flushed

        await _until(arrived, 2.0)
        await asyncio.sleep(0.6)
        assert direct.flushes == 0  # listening: no fallback flushes
    finally:
        await direct.stop()


async def test_an_unreachable_listen_url_falls_back_without_holding_start_up() -> None:
    """N2: the LISTEN database down at start: start() returns after the first failed
    attempt (not its full wait), and caches are flushed each fallback_ttl."""
    flushed: list[str | None] = []
    notifier = Notifier("postgresql://svc:pw@127.0.0.1:1/oneauth", fallback_ttl=0.3)
    notifier.subscribe(REGISTRY_CHANNEL, flushed.append, cache=True)
    started = time.monotonic()
    await notifier.start(wait=10)
    try:
        assert time.monotonic() - started < 5
        assert not notifier.listening
        await asyncio.sleep(0.8)
        assert flushed.count(None) >= 2
    finally:
        await notifier.stop()


async def test_listen_off_bounds_staleness_by_the_fallback_ttl(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    """N2, regression: with no LISTEN (``ONEAUTH_LISTEN=off``) a suspension made
    elsewhere shows within listen_fallback_ttl, not the registry's 300 s TTL."""
    app = provision()
    deaf = replace(settings, listen=False, registry_cache_ttl=300.0, listen_fallback_ttl=1.0)
    path = f"/apps/{app.app_id}/v1/app"
    async with _serving(deaf) as (client, services):
        assert not services.notifier.listening
        assert (await client.get(path)).status_code == 200
        with ops.connect(settings.operator_url) as conn:
            lifecycle.set_status(conn, app.app_id, "suspended")
        # Not at once (no notice arrives) ...
        assert (await client.get(path)).status_code == 200
        # ... but within the bound (1 s, plus polling slack on a busy machine).
        await _until(_status_is(client, path, 404), 3.0)
    with ops.connect(settings.operator_url) as conn:
        lifecycle.set_status(conn, app.app_id, "active")


async def _alternate(a: asyncpg.Connection, b: asyncpg.Connection) -> None:
    """Make ``a``'s next query land on another server connection than its last.

    Both server connections opened first; then while ``b`` holds the one ``a``
    just used (pgbouncer reuses the most recently released server), ``a`` runs
    the same query again on the other one.
    """
    await a.execute("BEGIN")
    await b.execute("BEGIN")
    await a.execute("COMMIT")
    await b.execute("COMMIT")
    for n in range(4):
        assert await a.fetchval("SELECT $1::int + 1", n) == n + 1
        await b.execute("BEGIN")
        try:
            assert await a.fetchval("SELECT $1::int + 1", n) == n + 1
        finally:
            await b.execute("COMMIT")


async def test_statement_cache_must_be_off_through_pgbouncer_1_18(
    settings: Settings, main_database: ScratchDatabase
) -> None:
    """N3: with asyncpg's statement cache on, a statement prepared on one server
    connection is missing on the next; with the setting at 0 nothing is named."""
    narrow = PgBouncer(*server_of(settings.operator_url), pool_size=2).start()
    try:
        through = narrow.route(main_database.service_dsn)
        cached = replace(settings, database_url=through, database_statement_cache_size=100)
        for size, fails in ((100, True), (0, False)):
            pool = await create_pool(
                replace(cached, database_statement_cache_size=size), min_size=2, max_size=2
            )
            try:
                async with pool.acquire() as a, pool.acquire() as b:
                    if fails:
                        with pytest.raises(asyncpg.InvalidSQLStatementNameError):
                            await _alternate(a, b)
                    else:
                        await _alternate(a, b)
            finally:
                pool.terminate()
    finally:
        narrow.stop()


def test_listen_settings_are_read_and_checked() -> None:
    direct = "postgresql://svc:pw@10.0.0.5:5432/oneauth"
    s = Settings.from_env(
        {
            "ONEAUTH_DATABASE_URL": "postgresql://svc:pw@pgbouncer:6432/oneauth",
            "ONEAUTH_LISTEN_DATABASE_URL": direct,
            "ONEAUTH_DATABASE_STATEMENT_CACHE_SIZE": "0",
            "ONEAUTH_LISTEN_FALLBACK_TTL": "2.5",
        }
    )
    assert (s.listen_url, s.database_statement_cache_size, s.listen_fallback_ttl) == (
        direct,
        0,
        2.5,
    )
    assert s.listen
    assert Settings.from_env({"ONEAUTH_LISTEN": "off"}).listen is False
    assert Settings().listen_url == Settings().database_url
    for var, bad in [
        ("ONEAUTH_LISTEN_DATABASE_URL", "mysql://x/y"),
        ("ONEAUTH_LISTEN_FALLBACK_TTL", "0"),
        ("ONEAUTH_DATABASE_STATEMENT_CACHE_SIZE", "-1"),
        ("ONEAUTH_LISTEN", "maybe"),
    ]:
        with pytest.raises(SettingsError, match=var):
            Settings.from_env({var: bad})


async def test_the_retention_lease_holds_through_pgbouncer(
    pooled: Settings, bouncer: PgBouncer
) -> None:
    """R3 through a transaction pooler: while one worker leads, every attempt of
    another is refused, whichever server connection it lands on; once released,
    every attempt succeeds. (A session-level advisory lock failed both halves: it
    stayed on one server connection, re-entrant for whoever landed there, and the
    unlock ran on another.)"""
    one = await create_pool(pooled, min_size=2, max_size=2)
    two = await create_pool(pooled, min_size=2, max_size=2)
    try:
        assert await retention_state.try_lead(one, "worker-one")
        refused = await asyncio.gather(
            *(retention_state.try_lead(two, "worker-two") for _ in range(30))
        )
        assert not any(refused)
        await retention_state.release(one, "worker-one")
        led = [await retention_state.try_lead(two, "worker-two") for _ in range(10)]
        assert all(led)  # its own lease: re-taken
        assert not await retention_state.try_lead(one, "worker-one")
        await retention_state.release(two, "worker-two")
    finally:
        await one.close()
        await two.close()
