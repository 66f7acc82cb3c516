"""One LISTEN connection per process, fanning change notices out to caches.

Caches (registry, signing keys, clients) subscribe to a channel; a change made
anywhere (CLI, another replica) drops their entry at once. LISTEN needs a
session of its own, which a transaction-mode pooler (PgBouncer) does not give:
the notices go to whichever server connection ran the LISTEN, long since handed
to another client. So this connection bypasses the pool and uses
``listen_database_url`` (a direct URL to Postgres) when set.

Whether notices really arrive is checked, not assumed: after LISTEN the notifier
sends itself a notice from a second connection and waits for it. Through a
transaction pooler that notice never comes back (the listening server connection
is idle, or is the sender's), so a misconfigured URL is reported instead of
silently leaving caches stale.

The fallback (N2): while there is no working LISTEN connection (``listen`` off,
the connection down, or its self-test failed), every cache subscriber is told
to drop everything each ``fallback_ttl`` seconds, so a change made elsewhere is
seen within that bound. On (re)connect every subscriber is told to drop
everything, since notices may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger("oneauth.notify")

# Called with the payload (an app_id), or None meaning "drop everything".
Subscriber = Callable[[str | None], None]

# The self-test's channel: only this process's listener waits on its nonce.
PROBE_CHANNEL = "oneauth_listen_probe"
PROBE_TIMEOUT = 3.0


class ListenUnusable(RuntimeError):
    """LISTEN succeeded but a notice sent from another session did not arrive."""


class ListenLost(RuntimeError):
    """A heartbeat notice on the listening connection did not come back in time."""


class Notifier:
    def __init__(
        self,
        dsn: str,
        *,
        enabled: bool = True,
        fallback_ttl: float = 5.0,
        heartbeat: float | None = None,
        heartbeat_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self._dsn = dsn
        self._enabled = enabled
        self._fallback_ttl = fallback_ttl
        self._heartbeat = fallback_ttl if heartbeat is None else heartbeat
        self._heartbeat_timeout = heartbeat_timeout
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._caches: dict[str, list[Subscriber]] = {}
        self._task: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._settled = asyncio.Event()  # the first attempt ended, either way
        self._probes: dict[str, asyncio.Future[None]] = {}
        self.flushes = 0  # fallback flushes so far (tests, metrics)
        self.heartbeats_lost = 0  # listening connections found dead by a heartbeat

    @property
    def listening(self) -> bool:
        """Whether a LISTEN connection is up and passed its self-test."""
        return self._connected.is_set()

    def subscribe(self, channel: str, subscriber: Subscriber, *, cache: bool = False) -> None:
        """Call ``subscriber`` on each notice of ``channel``.

        ``cache``: a cache of database state, flushed every ``fallback_ttl``
        seconds while notices cannot arrive. Workers woken by notices (mail,
        webhooks) are not caches: their own sweep interval is their fallback.
        """
        self._subscribers.setdefault(channel, []).append(subscriber)
        if cache:
            self._caches.setdefault(channel, []).append(subscriber)

    async def start(self, wait: float = 5.0) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_while_deaf(), name="oneauth-flusher")
        if not self._enabled:
            log.info("notify_listen_off", fallback_ttl=self._fallback_ttl)
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="oneauth-notifier")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), timeout=wait)

    async def stop(self) -> None:
        for task in (self._task, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._flusher = None

    def _dispatch(self, channel: str, payload: str | None) -> None:
        for subscriber in self._subscribers.get(channel, ()):
            subscriber(payload)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self._dispatch(channel, payload or None)

    def _on_probe(self, conn: object, pid: int, channel: str, payload: str) -> None:
        waiter = self._probes.get(payload)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _flush_caches(self) -> None:
        for subscribers in self._caches.values():
            for subscriber in subscribers:
                subscriber(None)

    async def _flush_while_deaf(self) -> None:
        while True:
            await asyncio.sleep(self._fallback_ttl)
            if self.listening:
                continue
            self.flushes += 1
            self._flush_caches()

    async def _probe(self, conn: asyncpg.Connection) -> None:
        """Send a notice from another session and wait for it on ``conn``."""
        nonce = secrets.token_hex(8)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes[nonce] = waiter
        try:
            sender = await asyncpg.connect(self._dsn, statement_cache_size=0, timeout=PROBE_TIMEOUT)
            try:
                await sender.execute(f"NOTIFY {PROBE_CHANNEL}, '{nonce}'")
            finally:
                await sender.close(timeout=2)
            try:
                await asyncio.wait_for(waiter, PROBE_TIMEOUT)
            except TimeoutError:
                raise ListenUnusable from None
        finally:
            del self._probes[nonce]

    async def _echo(self, conn: asyncpg.Connection) -> None:
        """Send a notice on ``conn`` itself and wait for it (the heartbeat).

        Postgres delivers a session's own notices to it, so this proves the
        connection and its backend still deliver. Raises ``ListenLost``.
        """
        nonce = secrets.token_hex(8)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes[nonce] = waiter
        try:
            async with asyncio.timeout(self._heartbeat_timeout):
                await conn.execute(f"NOTIFY {PROBE_CHANNEL}, '{nonce}'")
                await waiter
        except TimeoutError:
            raise ListenLost from None
        finally:
            del self._probes[nonce]

    async def _listen_until_lost(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when ``conn`` reports its end; raise ``ListenLost`` on a silent one."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._heartbeat)
            if not lost.is_set():
                await self._echo(conn)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    statement_cache_size=0,
                    server_settings={"application_name": "oneauth-listen"},
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(PROBE_CHANNEL, self._on_probe)
                for channel in self._subscribers:
                    await conn.add_listener(channel, self._on_notify)
                await self._probe(conn)
                for channel in self._subscribers:
                    self._dispatch(channel, None)
                self._connected.set()
                self._settled.set()
                backoff = 0.5
                log.info("notify_listening")
                await self._listen_until_lost(conn, lost)
            except asyncio.CancelledError:
                self._connected.clear()  # stopping: nothing to flush for
                raise
            except ListenLost:
                self.heartbeats_lost += 1
                log.warning(
                    "notify_heartbeat_lost",
                    detail="a notice sent on the listening connection did not come back",
                    heartbeat_timeout=self._heartbeat_timeout,
                )
                # Its socket may never answer again: do not wait on a goodbye.
                if conn is not None:
                    conn.terminate()
            except ListenUnusable:
                # Through a transaction-mode pooler: retrying soon will not help.
                log.warning(
                    "notify_listen_unusable",
                    detail="a notice sent from another session never arrived: is the URL "
                    "a transaction-mode pooler? Set ONEAUTH_LISTEN_DATABASE_URL to a direct "
                    "connection to Postgres",
                    fallback_ttl=self._fallback_ttl,
                )
                backoff = 60.0
            except Exception as exc:
                log.warning("notify_listen_failed", error=type(exc).__name__)
            finally:
                if self._connected.is_set():
                    # Notices since the last heartbeat may be lost: drop everything
                    # now rather than at the flusher's next tick.
                    self._connected.clear()
                    self._flush_caches()
                self._settled.set()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(backoff)
            backoff = max(backoff, min(backoff * 2, 10.0))
