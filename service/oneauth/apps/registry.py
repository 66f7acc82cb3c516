"""In-process cache of the app registry, invalidated on change.

The registry decides whether an app_id taken from a URL or a token is real
(B3). Lookups are cached for ``registry_cache_ttl`` seconds; a change in the
registry is broadcast with NOTIFY and drops the entry at once in every process
that listens. Unknown ids are cached too, so a flood of made-up ids costs one
query per id and TTL, and invalid ids never reach the database.

An app whose schema is behind what this release needs (its migration failed or
has not run yet) is refused with 503 ``app_unavailable``; a schema ahead of
it (a newer release migrated first) still serves.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import asyncpg

from oneauth import metrics
from oneauth.apps.dek import KeyRing
from oneauth.apps.models import REGISTRY_COLUMNS, AppRecord, record_from_row
from oneauth.db import templates
from oneauth.db.naming import is_valid_app_id
from oneauth.errors import AppNotFound, AppUnavailable

CHANNEL = "oneauth_registry"


class Registry:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl: float = 5.0,
        max_entries: int = 100_000,
        required_version: int | None = None,
        keyring: KeyRing | None = None,
    ) -> None:
        self._pool = pool
        # Every record read here carries its app's wrapped DEK: the ring learns
        # it, so a request that passed the gate can seal for its app (K1).
        self.keyring = keyring
        # The app schema version this code needs (its newest template).
        self.required_version = (
            templates.latest_version("app") if required_version is None else required_version
        )
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, AppRecord | None]] = OrderedDict()
        self._generation = 0

    async def get(self, app_id: str) -> AppRecord | None:
        """The app's record, or None if the id is invalid or unknown."""
        if not is_valid_app_id(app_id):
            return None
        now = time.monotonic()
        hit = self._cache.get(app_id)
        if hit is not None and hit[0] > now:
            metrics.REGISTRY_HIT.inc()
            return hit[1]
        metrics.REGISTRY_MISS.inc()
        generation = self._generation
        row = await self._pool.fetchrow(
            f"SELECT {REGISTRY_COLUMNS} FROM oneauth.apps WHERE app_id = $1", app_id
        )
        record = None if row is None else record_from_row(row)
        if record is not None and self.keyring is not None:
            self.keyring.learn_record(record)
        # An invalidation that raced with this read wins: don't cache stale data.
        if generation == self._generation:
            self._cache[app_id] = (now + self._ttl, record)
            self._cache.move_to_end(app_id)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return record

    async def require_active(self, app_id: str) -> AppRecord:
        """Fail closed: unknown, suspended and deleted apps are all AppNotFound;
        an app whose schema is behind this release is AppUnavailable (503)."""
        record = await self.get(app_id)
        if record is None or not record.is_active:
            raise AppNotFound(f"no active app {app_id!r}" if is_valid_app_id(app_id) else None)
        if record.schema_version < self.required_version:
            raise AppUnavailable(
                f"app {app_id!r} is being upgraded; try again shortly",
                headers={"retry-after": "30"},
            )
        return record

    def invalidate(self, app_id: str | None = None) -> None:
        self._generation += 1
        if app_id is None:
            self._cache.clear()
        else:
            self._cache.pop(app_id, None)

    def on_change(self, app_id: str | None) -> None:
        """Notifier subscriber: drop one app, or everything (None)."""
        self.invalidate(app_id)
