"""N2: a LISTEN connection that dies without a word is found by its heartbeat.

The listener reaches Postgres through a TCP relay that can stop passing bytes
while keeping both sockets open: what a dropped network path or a half-open
connection after a failover looks like from the client. Nothing reports such a
loss (TCP would retry for many minutes), so only the heartbeat can notice it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import asyncpg
from psycopg.conninfo import conninfo_to_dict

from oneauth.apps.registry import CHANNEL as REGISTRY_CHANNEL
from oneauth.db.notify import Notifier
from oneauth.settings import Settings


class Relay:
    """Forwards TCP connections to Postgres; ``freeze`` stops the open ones silently."""

    def __init__(self, host: str, port: int) -> None:
        # A libpq host that is a directory names a Unix socket there.
        self._unix = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else None
        self._target = (host, port)
        self._live: list[asyncio.Event] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def freeze(self) -> None:
        """From now on the connections open so far pass nothing, in either direction."""
        for gate in self._live:
            gate.set()
        self._live.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        if self._unix is not None:
            up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        frozen = asyncio.Event()
        self._live.append(frozen)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while not frozen.is_set():
                data = await src.read(65536)
                if not data:  # an orderly close passes through
                    dst.close()
                    return
                if frozen.is_set():
                    break
                dst.write(data)
                await dst.drain()
            # Frozen: hold the sockets open and say nothing, as a dead path does.
            await asyncio.Event().wait()

        tasks = [
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                w.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


@contextlib.asynccontextmanager
async def _relayed(dsn: str) -> AsyncIterator[tuple[Relay, str]]:
    """A relay to the database of ``dsn`` (over TCP or a Unix socket) and the URL
    that reaches it through the relay."""
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "/var/run/postgresql")
    relay = Relay(host, int(params.get("port") or 5432))
    port = await relay.start()
    user = quote(str(params.get("user") or ""), safe="")
    password = params.get("password")
    auth = user + (":" + quote(str(password), safe="") if password else "")
    database = quote(str(params.get("dbname") or ""), safe="")
    try:
        yield relay, f"postgresql://{auth}@127.0.0.1:{port}/{database}"
    finally:
        await relay.close()


async def _notify(dsn: str, payload: str) -> None:
    conn = await asyncpg.connect(dsn, statement_cache_size=0)
    try:
        await conn.execute(f"NOTIFY {REGISTRY_CHANNEL}, '{payload}'")
    finally:
        await conn.close()


async def _until(seen: list[str | None], value: str | None, within: float) -> float:
    started = time.monotonic()
    while value not in seen:
        if time.monotonic() - started > within:
            raise AssertionError(f"{value!r} not seen within {within} s: {seen}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_silently_dead_listener_flushes_the_caches_and_listens_again(
    settings: Settings,
) -> None:
    """N2: with the fallback flush 60 s away, a listener cut off silently is found
    by its heartbeat (every 0.3 s, echo within 1 s): the caches are flushed within
    that bound, and a new connection delivers notices again. Without a heartbeat the
    listener would count as listening, deaf, until TCP gave up."""
    async with _relayed(settings.listen_url) as (relay, dsn):
        seen: list[str | None] = []
        notifier = Notifier(dsn, fallback_ttl=60.0, heartbeat=0.3, heartbeat_timeout=1.0)
        notifier.subscribe(REGISTRY_CHANNEL, seen.append, cache=True)
        await notifier.start(wait=10)
        try:
            assert notifier.listening
            await _notify(settings.listen_url, "app-before")
            await _until(seen, "app-before", 2.0)
            seen.clear()

            relay.freeze()
            await _notify(settings.listen_url, "app-lost")  # this notice never arrives
            # ... but the caches are flushed, after heartbeat + echo timeout (1.3 s),
            # with room for a loaded machine and far from the flusher's 60 s.
            await _until(seen, None, 5.0)
            assert "app-lost" not in seen
            assert notifier.heartbeats_lost >= 1
            assert notifier.flushes == 0  # the flusher's 60 s never came round

            # The reconnect goes through the relay again (new connections pass).
            started = time.monotonic()
            while not notifier.listening:
                assert time.monotonic() - started < 5, "did not listen again"
                await asyncio.sleep(0.05)
            await _notify(settings.listen_url, "app-after")
            await _until(seen, "app-after", 2.0)
        finally:
            await notifier.stop()


async def test_a_healthy_listener_keeps_listening_through_its_heartbeats(
    settings: Settings,
) -> None:
    """N2: heartbeats that come back change nothing: no flush, no reconnect."""
    seen: list[str | None] = []
    notifier = Notifier(
        settings.listen_url, fallback_ttl=60.0, heartbeat=0.1, heartbeat_timeout=3.0
    )
    notifier.subscribe(REGISTRY_CHANNEL, seen.append, cache=True)
    await notifier.start(wait=10)
    try:
        assert notifier.listening
        seen.clear()  # the connect-time "drop everything"
        await asyncio.sleep(1.0)  # ~10 heartbeats
        assert seen == []
        assert notifier.heartbeats_lost == 0
        assert notifier.listening
        await _notify(settings.listen_url, "app-x")
        await _until(seen, "app-x", 2.0)
    finally:
        await notifier.stop()
