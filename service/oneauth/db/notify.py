"""One LISTEN connection per process, fanning change notices out to caches.

Caches (registry, signing keys, clients) subscribe to a channel; a change made
anywhere (CLI, another replica) drops their entry at once. LISTEN does not
survive a transaction-mode pooler, so this connection bypasses the pool; when it
is down, every cache's TTL still bounds staleness, and on reconnect every
subscriber is told to drop everything, since notices may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger("oneauth.notify")

# Called with the payload (an app_id), or None meaning "drop everything".
Subscriber = Callable[[str | None], None]


class Notifier:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        self._subscribers.setdefault(channel, []).append(subscriber)

    async def start(self, wait: float = 5.0) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="oneauth-notifier")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), timeout=wait)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _dispatch(self, channel: str, payload: str | None) -> None:
        for subscriber in self._subscribers.get(channel, ()):
            subscriber(payload)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self._dispatch(channel, payload or None)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "oneauth-listen"}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self._subscribers:
                    await conn.add_listener(channel, self._on_notify)
                for channel in self._subscribers:
                    self._dispatch(channel, None)
                self._connected.set()
                backoff = 0.5
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notify_listen_failed", error=type(exc).__name__)
            finally:
                self._connected.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
