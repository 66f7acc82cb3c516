"""The service's asyncpg pools.

Connections carry no session state of ours: the router sets role and
search_path transaction-locally, so a connection is clean again at COMMIT or
ROLLBACK and safe to share through PgBouncer in transaction mode. The pool's
reset therefore only rolls back a stray transaction (asyncpg does that before
calling ours) and costs no extra round trip.

Two kinds of pool per process:

* the control pool (``create_pool``): registry lookups, health, the mail
  outbox scan; it runs as the login role and never enters an app;
* the app pools (``create_app_pools``): what the router hands out. A Postgres
  backend keeps the catalog entries of every schema it has touched (measured
  ~100-370 KB per schema, depending on how many tables a request touches) and
  pays ~0.7 ms per table the first time. Spreading every app over every
  connection makes each backend warm up, and hold, every active app. So the
  app connections are split into shards and each app has a home shard (a
  stable hash of its id): a backend sees about active_apps / shards apps,
  stays warm and is rarely recycled. When the home shard is busy, an idle
  connection of another shard is borrowed rather than making the request
  queue while backends know few apps, so one hot app can still use every
  connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from oneauth import metrics
from oneauth.settings import Settings

log = structlog.get_logger("oneauth.db")

# An app's units on one connection before its statements get texts of their own:
# an app met once (a borrow, a cold app) takes no room in the statement cache.
KEEP_AFTER = 3


class RoutedConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that remembers which app schemas it has entered.

    Postgres caches catalog entries for every schema a backend touches and never
    frees them; the router replaces a connection once this set grows too large.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.oneauth_apps: set[str] = set()
        # {"app": AppRecord} while an app's transaction is open on it (Router.enter),
        # for code handed only the connection (webhooks.app_of). A dict changed in
        # place, like the set above: the pool's proxy forwards reads, not writes.
        self.oneauth_entered: dict[str, Any] = {}
        # Units per app here, and the apps whose statements have their own texts.
        self.oneauth_units: dict[str, int] = {}
        self.oneauth_kept: set[str] = set()

    def plan_tag(self, app_id: str, tag: str) -> str | None:
        """The tag for this unit of ``app_id``'s, or None: its statements share texts.

        An app's statements get texts of their own on this connection (and keep
        their plans, see ``_get_statement``) from its ``KEEP_AFTER``-th unit here,
        while asyncpg's statement cache is under three quarters full; once kept, for
        the connection's life. Postgres keeps ~40 KiB (a two-table join) to ~183 KiB
        (the refresh rotation) per prepared statement, so the cache's size bounds
        that memory per backend. Apps that come later, once it is full, re-plan as
        before; a cache that cycled through more apps than it holds would re-prepare
        every statement, which costs more than re-planning it.
        """
        if app_id in self.oneauth_kept:
            return tag
        if not self._stmt_cache_enabled:
            return None
        units = self.oneauth_units.get(app_id, 0) + 1
        self.oneauth_units[app_id] = units
        cache = self._stmt_cache
        if units < KEEP_AFTER or len(cache) * 4 >= cache.get_max_size() * 3:
            return None
        self.oneauth_kept.add(app_id)
        return tag

    def _get_statement(self, query: str, timeout: float | None, **kwargs: Any) -> Any:
        # Inside a kept app's unit every text carries the app's tag (plan_tag), so
        # asyncpg prepares and caches it once per app on this connection. Postgres
        # re-analyses and re-plans a prepared statement whenever search_path differs
        # from the one it was planned under; with one statement shared by every app,
        # each call after another app's unit was planned again (at 1,000 apps ~0.2 ms
        # of planning per statement). An app's own statement is only ever run under
        # that app's search_path, so it keeps its plan. Names still resolve through
        # the unit's search_path and privileges through its role: the tag is a
        # comment, a cache key and nothing else.
        tag = self.oneauth_entered.get("tag")
        if tag is not None:
            query = tag + query
        return super()._get_statement(query, timeout, **kwargs)


async def warm_role_checks(conn: asyncpg.Connection) -> None:
    """``init`` of an app connection: have its backend list the login role's roles now.

    A backend's first role check (the router's ``set_config('role', ...)``) makes
    Postgres list every role the login role may become, and keep the list until
    any role membership changes anywhere. With a member of 10,000 app roles that
    took 259 ms on PostgreSQL 15 here (the list is built in quadratic time; 16 and
    later build it faster). ``pg_has_role`` with a role the login role is not
    (``pg_monitor``) needs the same list, so asking it once here moves the cost to
    where the connection is opened, which ``AppPools`` does off the request path.
    The option is the one SET ROLE checks: MEMBER up to 15, SET from 16.
    """
    option = "SET" if conn.get_server_version().major >= 16 else "MEMBER"
    await conn.execute("SELECT pg_has_role(session_user, 'pg_monitor', '" + option + "')")


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    # Nothing to undo: all our settings are transaction-local (see module doc).
    return None


# Registry misses, /readyz and the outbox scan: short queries, rarely concurrent.
CONTROL_POOL_SIZE = 2


def _options(settings: Settings) -> dict[str, Any]:
    return {
        "max_queries": settings.pool_max_queries,
        # 0 through PgBouncer < 1.21 (transaction mode): see Settings.
        "statement_cache_size": settings.database_statement_cache_size,
        "max_inactive_connection_lifetime": 300.0,
        "connection_class": RoutedConnection,
        "reset": _no_session_reset,
        "server_settings": {"application_name": "oneauth"},
        "command_timeout": 30,
        # asyncpg's connect timeout (60 s by default): an unreachable Postgres
        # must fail a request within the acquire bound, not hold it for a minute.
        "timeout": settings.pool_acquire_timeout,
    }


async def create_pool(settings: Settings, **overrides: Any) -> asyncpg.Pool:
    """The control pool (or, with overrides, any single pool, e.g. in tests)."""
    options = _options(settings) | {"min_size": 1, "max_size": CONTROL_POOL_SIZE}
    options.update(overrides)
    pool = await asyncpg.create_pool(settings.database_url, **options)
    assert pool is not None
    return pool


def shard_sizes(total: int, shards: int) -> list[int]:
    """Split ``total`` connections over ``shards`` sub-pools as evenly as possible."""
    base, extra = divmod(total, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


def default_shards(max_size: int) -> int:
    # One connection per shard: each backend sees 1/max_size of the apps active
    # in its process (measured best at 1,000 active apps; see AppPools.acquire).
    return max(1, max_size)


class PoolTimeout(TimeoutError):
    """No connection within the acquire bound: the HTTP layer answers 503 + Retry-After."""


class AppPools:
    """The router's connections: one sub-pool per shard, an app's home by hash."""

    def __init__(self, pools: Sequence[asyncpg.Pool], *, acquire_timeout: float = 5.0) -> None:
        if not pools:
            raise ValueError("AppPools needs at least one pool")
        self.pools = tuple(pools)
        # Q3: a request waits at most this long for a connection (every shard
        # busy, or Postgres not answering), then fails fast with 503.
        self.acquire_timeout = acquire_timeout
        self.timeouts = 0
        self._pending: dict[int, int] = {}  # id(pool) -> acquires under way
        self.borrowed = 0  # units served outside their app's home shard
        self.declined = 0  # units that found an idle connection with no room for their app
        self.queued = 0  # units that found no connection and waited for one
        self._waiting = 0
        self._freed = asyncio.Condition()
        self._reopening: set[asyncio.Task[None]] = set()
        self.reopened = 0  # connections opened again off the request path
        self.reopen_failures = 0
        self._rewarming: asyncio.Task[None] | None = None
        self._rewarm_again = False
        self.rewarm_passes = 0
        self.rewarmed = asyncio.Event()  # set after each pass (tests clear it)

    def home(self, app_id: str) -> int:
        # crc32, not hash(): the same home in every process and every restart.
        return zlib.crc32(app_id.encode()) % len(self.pools)

    async def acquire(
        self, app_id: str, *, max_apps: int
    ) -> tuple[asyncpg.Pool, asyncpg.Connection]:
        """A connection for ``app_id`` and the pool to release it to (``release``).

        The home shard's when it has one free (or can open one). Otherwise an
        idle connection of another shard, if that backend already knows the
        app, or still knows few apps (under a quarter of ``max_apps``): with
        few active apps, one hot app spreads over every connection; with many,
        backends keep to their home share and a cold borrow (a first touch of
        a schema, ~0.7 ms per table, and cache memory for good) is not worth
        saving a short wait.

        Failing both, the unit queues, and every release wakes the queue to try
        again in arrival order: it takes whichever usable connection frees
        first. Waiting on the home shard's own queue instead made one hot app
        line up behind its home's single connection while others went idle
        (refresh p99 at one app: 14 ms before sharding, 100 ms with it).

        Measured on 2 cores, 10,000 apps, traffic over 1,000, 10 connections:
        borrowing whenever a backend had room filled every backend with foreign
        apps and recycled them constantly (1,144 units/s); home-only 2,602/s.

        All of it within ``acquire_timeout`` (Q3): past it, ``PoolTimeout``.
        """
        try:
            async with asyncio.timeout(self.acquire_timeout):
                return await self._acquire(app_id, max_apps)
        except TimeoutError:
            self.timeouts += 1
            metrics.POOL_ACQUIRE_TIMEOUTS.inc()
            raise PoolTimeout(f"no database connection within {self.acquire_timeout:g} s") from None

    async def _acquire(self, app_id: str, max_apps: int) -> tuple[asyncpg.Pool, asyncpg.Connection]:
        home = self.pools[self.home(app_id)]
        declined: set[int] = set()  # backends this unit found full: counted once
        if not self._waiting:
            got = await self._try(app_id, home, max_apps, declined)
            if got is not None:
                return got
        self.queued += 1
        self._waiting += 1
        queued_at = time.perf_counter()
        try:
            async with self._freed:
                # Try again before the first wait: a release between the try
                # above and taking the condition notified nobody.
                while True:
                    got = await self._try(app_id, home, max_apps, declined)
                    if got is not None:
                        return got
                    # The timeout only guards against a wake-up lost to a
                    # connection that left the pool without a release.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._freed.wait(), 1.0)
        finally:
            self._waiting -= 1
            metrics.POOL_WAIT_SECONDS.observe(time.perf_counter() - queued_at)

    async def _take(self, pool: asyncpg.Pool) -> asyncpg.Connection:
        # Counted until asyncpg hands the connection over: while one is being
        # opened, the pool's own figures still show room for it, and a second
        # unit that believed them would wait inside asyncpg's acquire (holding
        # the queue's condition) for the first to finish its request.
        self._pending[id(pool)] = self._pending.get(id(pool), 0) + 1
        try:
            return await pool.acquire()
        finally:
            self._pending[id(pool)] -= 1

    def _free(self, pool: asyncpg.Pool) -> tuple[int, int]:
        """(idle, room) of a shard, less the acquires already under way on it."""
        idle, room = _spare_rank(pool)
        pending = self._pending.get(id(pool), 0)
        taken_idle = min(idle, pending)
        return idle - taken_idle, max(0, room - (pending - taken_idle))

    async def _try(
        self, app_id: str, home: asyncpg.Pool, max_apps: int, declined: set[int]
    ) -> tuple[asyncpg.Pool, asyncpg.Connection] | None:
        if self._free(home) != (0, 0):
            return home, await self._take(home)
        if len(self.pools) == 1:
            return None
        # An idle connection, else room to open one (it starts knowing no app).
        spare = max(self.pools, key=self._free)
        if self._free(spare) == (0, 0):
            return None
        conn = await self._take(spare)
        known: set[str] = getattr(conn, "oneauth_apps", set())
        if app_id in known or len(known) < max(1, max_apps // 4):
            self.borrowed += 1
            return spare, conn
        backend = conn.get_server_pid()  # each acquire wraps it in a new proxy
        if backend not in declined:
            declined.add(backend)
            self.declined += 1
        await spare.release(conn)
        return None

    async def release(
        self, pool: asyncpg.Pool, conn: asyncpg.Connection, *, close: bool = False
    ) -> None:
        """Give a connection back and wake the units queued for one.

        ``close``: replace it (the router's bound on apps per backend). A connection
        closed here, or by asyncpg at release (``max_queries``), is opened again at
        once in the background (``reopen``), so that no request waits for a new
        backend's connect and first role check. One that broke (terminated) is not:
        the next unit that needs it reconnects, as a failing database needs.
        """
        before = pool.get_size()
        if close:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)
        await pool.release(conn)
        if pool.get_size() < before and not pool.is_closing():
            self.reopen(pool)
        if self._waiting:
            async with self._freed:
                self._freed.notify_all()

    def reopen(self, pool: asyncpg.Pool) -> None:
        """Open a shard's missing connection in the background (``warm_role_checks``
        included). Until it is open the shard counts as busy, so units borrow or
        wait instead of opening it themselves."""
        self._pending[id(pool)] = self._pending.get(id(pool), 0) + 1
        task = asyncio.get_running_loop().create_task(self._reopen(pool))
        self._reopening.add(task)
        task.add_done_callback(self._reopening.discard)

    async def _reopen(self, pool: asyncpg.Pool) -> None:
        try:
            conn = await pool.acquire()
        except Exception as exc:  # Postgres away: the next unit tries again itself
            self.reopen_failures += 1
            log.warning("pool_reopen_failed", error=type(exc).__name__)
            return
        finally:
            self._pending[id(pool)] -= 1
        self.reopened += 1
        await self.release(pool, conn)

    def rewarm(self, _app_id: str | None = None) -> None:
        """On a notice of the registry channel (an app provisioned, changed or
        deleted): redo the role check on each idle connection, in the background.

        A change to role memberships makes Postgres drop every backend's list of
        roles (``warm_role_checks``); each connection's next unit would build it
        again. Idle connections build it now, one at a time; busy ones are left to
        their next unit. A notice that changed no membership costs an idle
        connection one check from its list (~0.5 ms). Notices that come during a
        pass make one more pass after it.
        """
        if self._rewarming is not None and not self._rewarming.done():
            self._rewarm_again = True
            return
        self._rewarm_again = False
        self._rewarming = asyncio.get_running_loop().create_task(self._rewarm_idle())

    async def _rewarm_idle(self) -> None:
        while True:
            for pool in self.pools:
                if self._free(pool)[0] == 0:
                    continue  # busy, or reopening: its next unit or opening does it
                conn = await self._take(pool)
                try:
                    await warm_role_checks(conn)
                except Exception as exc:  # the next unit meets whatever this was
                    log.warning("pool_rewarm_failed", error=type(exc).__name__)
                finally:
                    await self.release(pool, conn)
            self.rewarm_passes += 1
            self.rewarmed.set()
            if not self._rewarm_again:
                return
            self._rewarm_again = False

    async def settled(self) -> None:
        """Wait for the reopens and the role-check pass under way (tests)."""
        while self._reopening or (self._rewarming is not None and not self._rewarming.done()):
            await asyncio.gather(
                *self._reopening,
                *([self._rewarming] if self._rewarming else []),
                return_exceptions=True,
            )

    def open_all(self) -> None:
        """At start: open, in the background, every shard connection not open yet."""
        for pool in self.pools:
            for _ in range(pool.get_max_size() - pool.get_size()):
                self.reopen(pool)

    async def close(self) -> None:
        for task in [*self._reopening, *([self._rewarming] if self._rewarming else [])]:
            task.cancel()
        for pool in self.pools:
            await pool.close()


def _spare_rank(pool: asyncpg.Pool) -> tuple[int, int]:
    idle: int = pool.get_idle_size()
    room: int = pool.get_max_size() - pool.get_size()
    return idle, room


async def create_app_pools(settings: Settings) -> AppPools:
    shards = settings.pool_shards or default_shards(settings.pool_max_size)
    sizes = shard_sizes(settings.pool_max_size, shards)
    minimums = shard_sizes(settings.pool_min_size, shards)
    pools: list[asyncpg.Pool] = []
    try:
        for size, minimum in zip(sizes, minimums, strict=True):
            options = _options(settings) | {
                "min_size": minimum,
                "max_size": size,
                "init": warm_role_checks,
            }
            pool = await asyncpg.create_pool(settings.database_url, **options)
            assert pool is not None
            pools.append(pool)
    except BaseException:
        for pool in pools:
            await pool.close()
        raise
    return AppPools(pools, acquire_timeout=settings.pool_acquire_timeout)
