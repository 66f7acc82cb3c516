"""The cached JWKS of one issuer: TTL, stale grace, cooldown and single flight.

Rules (RFC 8725 §3.10 spirit: the key set is fetched from configuration,
never chosen by a token):

* Keys are fresh for ``ttl`` seconds after a successful fetch. The first use
  after that refetches; if that fails, the old keys keep working for
  ``stale_grace`` seconds past expiry, after which verification fails closed.
* An unknown ``kid`` forces one refetch, to pick up a rotated key quickly,
  but at most once per ``cooldown``: otherwise a stream of garbage kids would
  turn every resource server into a load generator against the issuer.
* A failed fetch is not retried for ``cooldown`` seconds either.
* Concurrent callers share one fetch: a lock for threads, one task per event
  loop for coroutines. A caller whose key is already cached (even if stale)
  never waits for a refresh that someone else is running.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._fetch import JWKSFetcher
from ._keys import VerifyKey, parse_jwk
from .errors import JWKSUnavailable, UnknownKey

__all__ = ["JWKSCache", "parse_jwks"]

log = logging.getLogger("oneauth_verifier")


def parse_jwks(doc: Mapping[str, Any]) -> dict[str, VerifyKey]:
    """Parse a JWK Set (RFC 7517 §5), skipping keys that cannot be used.

    One bad key must not take the whole set down, so unusable keys are only
    logged. A kid that appears twice is ambiguous and is dropped entirely.
    """
    raw_keys = doc.get("keys")
    if not isinstance(raw_keys, list):
        raise JWKSUnavailable("JWKS document has no keys array")
    keys: dict[str, VerifyKey] = {}
    duplicates: set[str] = set()
    for raw in raw_keys:
        if not isinstance(raw, dict):
            log.warning("ignoring JWKS entry that is not an object")
            continue
        try:
            key = parse_jwk(raw)
        except ValueError as exc:
            log.warning("ignoring unusable JWK kid=%r: %s", raw.get("kid"), exc)
            continue
        if key.kid in keys:
            duplicates.add(key.kid)
        keys[key.kid] = key
    for kid in duplicates:
        log.warning("ignoring JWK kid=%r: it appears more than once", kid)
        del keys[kid]
    return keys


@dataclass(frozen=True, slots=True)
class _Snapshot:
    keys: Mapping[str, VerifyKey] = field(default_factory=dict)
    fresh_until: float = -math.inf
    stale_until: float = -math.inf


class JWKSCache:
    """Key lookup by ``kid`` for one issuer; see the module docstring."""

    def __init__(
        self,
        fetcher: JWKSFetcher | None,
        *,
        ttl: float,
        cooldown: float,
        stale_grace: float,
        clock: Callable[[], float],
        static: Mapping[str, VerifyKey] | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._ttl = ttl
        self._cooldown = cooldown
        self._grace = stale_grace
        self._clock = clock
        self._snap = (
            _Snapshot(dict(static), math.inf, math.inf) if static is not None else _Snapshot()
        )
        self._last_forced = -math.inf
        self._retry_at = -math.inf
        self._last_error: JWKSUnavailable | None = None
        # Guards only the decision to fetch; never held across I/O, so the
        # async path may take it without blocking the loop noticeably.
        self._state_lock = threading.Lock()
        # Held across a sync fetch so that threads share it.
        self._fetch_lock = threading.Lock()
        self._tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[JWKSUnavailable | None]] = {}

    def cached(self, kid: str, now: float) -> VerifyKey | None:
        """The hot path: a fresh cached key, or None if the slow path is needed."""
        snap = self._snap
        if now < snap.fresh_until:
            return snap.keys.get(kid)
        return None

    def get(self, kid: str) -> VerifyKey:
        """Return the key for ``kid``, fetching (blocking) if needed."""
        key = self.cached(kid, self._clock())
        if key is not None:
            return key
        if not self._fetch_lock.acquire(blocking=False):
            stale = self._usable_stale(kid)
            if stale is not None:
                return stale
            self._fetch_lock.acquire()
        try:
            error = None
            if self._should_fetch(kid):
                assert self._fetcher is not None
                try:
                    self._install(self._fetcher.fetch())
                except JWKSUnavailable as exc:
                    error = self._failed(exc)
            return self._resolve(kid, error)
        finally:
            self._fetch_lock.release()

    async def aget(self, kid: str) -> VerifyKey:
        """Async :meth:`get`; concurrent callers on one loop share a fetch."""
        key = self.cached(kid, self._clock())
        if key is not None:
            return key
        loop = asyncio.get_running_loop()
        running = self._tasks.get(loop)
        if running is not None:
            stale = self._usable_stale(kid)
            if stale is not None:
                return stale
            # shield: a cancelled caller must not cancel everyone's fetch.
            await asyncio.shield(running)
        error = None
        if self._should_fetch(kid):
            task = loop.create_task(self._afetch())
            self._tasks[loop] = task
            task.add_done_callback(self._forget_task)
            error = await asyncio.shield(task)
        return self._resolve(kid, error)

    def refresh(self) -> None:
        """Fetch now, bypassing TTL and cooldown (e.g. at startup)."""
        if self._fetcher is None:
            return
        with self._fetch_lock:
            try:
                self._install(self._fetcher.fetch())
            except JWKSUnavailable as exc:
                raise self._failed(exc) from None

    async def arefresh(self) -> None:
        """Async :meth:`refresh`."""
        if self._fetcher is None:
            return
        error = await self._afetch()
        if error is not None:
            raise error

    def _forget_task(self, task: asyncio.Task[JWKSUnavailable | None]) -> None:
        # Done callbacks run later than the task ends; by then a newer fetch
        # may own the slot, and it must stay visible to waiters.
        loop = task.get_loop()
        if self._tasks.get(loop) is task:
            del self._tasks[loop]

    async def _afetch(self) -> JWKSUnavailable | None:
        assert self._fetcher is not None
        try:
            self._install(await self._fetcher.afetch())
        except JWKSUnavailable as exc:
            return self._failed(exc)
        return None

    def _usable_stale(self, kid: str) -> VerifyKey | None:
        snap = self._snap
        if self._clock() < snap.stale_until:
            return snap.keys.get(kid)
        return None

    def _should_fetch(self, kid: str) -> bool:
        """Decide, atomically, whether this caller fetches; claims the slot if so."""
        if self._fetcher is None:
            return False
        with self._state_lock:
            now = self._clock()
            snap = self._snap
            if now < snap.fresh_until:
                if kid in snap.keys:
                    return False  # someone else's fetch brought it in
                if now - self._last_forced < self._cooldown or now < self._retry_at:
                    return False
                self._last_forced = now
                return True
            return now >= self._retry_at

    def _install(self, doc: Mapping[str, Any]) -> None:
        keys = parse_jwks(doc)
        now = self._clock()
        with self._state_lock:
            self._snap = _Snapshot(keys, now + self._ttl, now + self._ttl + self._grace)
            self._retry_at = -math.inf
            self._last_error = None

    def _failed(self, exc: JWKSUnavailable) -> JWKSUnavailable:
        log.warning("JWKS refresh failed: %s", exc)
        with self._state_lock:
            self._retry_at = self._clock() + self._cooldown
            self._last_error = exc
        return exc

    def _resolve(self, kid: str, error: JWKSUnavailable | None) -> VerifyKey:
        snap = self._snap
        now = self._clock()
        key = snap.keys.get(kid)
        if now < snap.stale_until:
            if key is not None:
                return key
            # Fresh keys without this kid is a plain unknown key; a failed
            # refresh means we could not tell, which is the issuer's outage.
            if error is not None:
                raise error
            raise UnknownKey("no key with this kid in the issuer's JWKS")
        if error is not None:
            raise error
        last = self._last_error
        raise JWKSUnavailable(
            f"issuer keys unavailable ({last or 'not fetched yet'}); retrying later"
        )
