"""The connection router: the only way to reach an app's data.

``async with router.app(app_id) as conn`` looks the app up in the registry (fail
closed: unknown, suspended or deleted raises AppNotFound before any app query),
then opens a transaction and becomes the app's role with the app's schema as
search_path, all transaction-local and in one round trip. Postgres privileges,
not the search_path, keep app A's context out of app B's schema (B2).
Nothing is set at session level, so this is safe behind PgBouncer in
transaction mode.

Which connection: ``AppPools`` keeps each app on a home shard of the
connections, so a backend's catalog cache holds a bounded, stable share of the
apps (see oneauth.db.pool); a connection that has still seen more than
``max_apps_per_connection`` distinct apps (its home shard has more active
apps than that) is closed after its unit. An app that uses a connection often
gets statement texts of its own there, so that they keep their plans (see
``statement_tag`` and ``RoutedConnection.plan_tag``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from oneauth.apps.models import AppRecord
from oneauth.apps.registry import Registry
from oneauth.db.naming import AppNames, quote_ident
from oneauth.db.pool import AppPools


class TransactionAborted(RuntimeError):
    """COMMIT turned into ROLLBACK: an error inside the unit was swallowed."""


def statement_tag(names: AppNames) -> str:
    """The comment that makes an app's statement texts its own (RoutedConnection)."""
    # The schema name is [a-z0-9_] (oneauth.db.naming): it cannot close the comment.
    return "/*" + names.schema + "*/ "


def _enter_sql(names: AppNames) -> str:
    # Names come from oneauth.db.naming only ([a-z0-9_]), quoted again here.
    # One simple-protocol message: BEGIN and both settings in one round trip.
    role = names.role
    schema = quote_ident(names.schema)
    return (
        "BEGIN; SELECT set_config('role', '" + role + "', true), "
        "set_config('search_path', '" + schema + "', true)"
    )


class Router:
    def __init__(
        self,
        pools: AppPools | asyncpg.Pool,
        registry: Registry,
        *,
        max_apps_per_connection: int = 256,
    ) -> None:
        self.pools = pools if isinstance(pools, AppPools) else AppPools([pools])
        self.registry = registry
        # Records handed to enter() by workers (read with their own queries)
        # carry their wrapped DEK too; the registry's ring learns it (K1).
        self.keyring = getattr(registry, "keyring", None)
        self.max_apps_per_connection = max_apps_per_connection
        self._enter_cache: dict[str, tuple[str, str]] = {}

    @contextlib.asynccontextmanager
    async def app(self, app_id: str) -> AsyncIterator[asyncpg.Connection]:
        record = await self.registry.require_active(app_id)
        async with self.enter(record) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def enter(
        self, record: AppRecord, *, read_committed: bool = False
    ) -> AsyncIterator[asyncpg.Connection]:
        """Enter an app already checked by the caller (e.g. the HTTP app gate).

        ``read_committed``: the transaction is READ COMMITTED whatever the server's
        default, for code that relies on each statement taking its own snapshot
        (the audit sealer reads rows after it has seen their writers end).
        """
        if self.keyring is not None:
            self.keyring.learn_record(record)
        cached = self._enter_cache.get(record.app_id)
        if cached is None:
            names = record.names
            cached = self._enter_cache[record.app_id] = (_enter_sql(names), statement_tag(names))
        enter_sql, tag = cached
        if read_committed:
            enter_sql = enter_sql.replace("BEGIN;", "BEGIN ISOLATION LEVEL READ COMMITTED;", 1)
        pool, conn = await self.pools.acquire(record.app_id, max_apps=self.max_apps_per_connection)
        recycle = False
        entered: dict[str, object] = getattr(conn, "oneauth_entered", {})
        try:
            try:
                keep = getattr(conn, "plan_tag", None)
                kept = keep(record.app_id, tag) if keep is not None else None
                await conn.execute(enter_sql)
                entered["app"] = record
                entered["tag"] = kept
                yield conn
            except BaseException:
                await _abandon(conn)
                raise
            try:
                status = await conn.execute("COMMIT")
            except BaseException:
                # Q1: whether the server committed is unknown; the connection
                # is not reused either way (its protocol state may be mid-query).
                conn.terminate()
                raise
            if status != "COMMIT":
                raise TransactionAborted(
                    f"transaction in app {record.app_id!r} was rolled back by the server"
                )
            touched: set[str] = getattr(conn, "oneauth_apps", set())
            touched.add(record.app_id)
            recycle = len(touched) > self.max_apps_per_connection
        finally:
            entered.pop("app", None)
            entered.pop("tag", None)
            # recycle: bound the backend's catalog cache, this connection has seen
            # enough schemas; the pools open its replacement in the background.
            await self.pools.release(pool, conn, close=recycle)

    async def chain(self, conn: asyncpg.Connection, record: AppRecord) -> None:
        """Commit the unit open on ``conn`` (from ``enter(record)``) and begin the
        next unit of the same app, in one round trip: ``COMMIT; BEGIN; set_config
        ...`` as one simple-protocol message. For a caller with more work for the
        app queued (oneauth.db.groupcommit): it saves the next unit's enter round
        trip and its pool acquire and release.

        Call it only when nothing in the unit raised. A transaction fails only
        through an error, and an error raises from the statement that met it, so
        the COMMIT here is a real commit, never a rollback in disguise (the one
        thing a single status for the whole message could hide). If the message
        raises (COMMIT refused, the connection lost), whether the server committed
        is unknown: the connection is terminated (Q1) and the error re-raised; the
        ``enter`` block then ends without reusing it.
        """
        cached = self._enter_cache.get(record.app_id)
        if cached is None:
            raise RuntimeError("chain() outside an enter() of this app")
        enter_sql, tag = cached
        try:
            await conn.execute("COMMIT; " + enter_sql)
        except BaseException:
            conn.terminate()
            raise
        entered: dict[str, object] = getattr(conn, "oneauth_entered", {})
        keep = getattr(conn, "plan_tag", None)
        if keep is not None:
            entered["tag"] = keep(record.app_id, tag)


async def _abandon(conn: asyncpg.Connection) -> None:
    """Roll back after an error; a connection that cannot roll back is dropped (Q1).

    When Postgres goes away mid-request (restart, a killed backend), the
    connection may be closed, or half-open with an operation still pending in
    asyncpg's protocol. Released like that, the pool would hand it to the next
    request, which then fails with an internal client error (a 500) instead of
    a clean reconnect. Terminating it makes the pool open a fresh one.
    """
    if conn.is_closed():
        return
    try:
        async with asyncio.timeout(2):
            await conn.execute("ROLLBACK")
    except Exception:
        conn.terminate()
