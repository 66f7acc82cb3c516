"""Run ``oneauth serve`` with experimental patches: measure a fix before writing it.

``python -m ops.bench --whatif rsa_skip,keys_ttl=3600,hasher_threads=1`` starts the
service through this script instead of the ``oneauth`` entry point. The patches are
applied at import, at the top level, so uvicorn's spawned workers (which re-run
the parent's main script as ``__mp_main__``) get them too. The service's code
is not touched; results of such a run are marked as a what-if in the report.

Patches (BENCH_WHATIF, comma-separated):

* ``rsa_skip``: load RSA private keys without re-validating them
  (``JWK.unsafe_skip_rsa_key_validation``); keys come from the AES-GCM sealed
  store, so their integrity is already authenticated;
* ``keys_ttl=N``: the KeyStore's cache TTL in seconds (the service uses 60);
* ``hasher_threads=N``: argon2 threads per worker (the service uses cpu_count);
* ``affinity=K``: split each worker's pool into K sub-pools and send an app's
  transactions always to the same one (by a hash of its id), so a backend only
  ever sees ~1/K of the active apps: warm catalog caches, no recycling churn.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import zlib
from collections.abc import AsyncIterator
from typing import Any

KNOWN = ("rsa_skip", "keys_ttl", "hasher_threads", "affinity")


def parse(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, value = item.partition("=")
        if name not in KNOWN:
            raise ValueError(f"unknown what-if patch {name!r}; known: {', '.join(KNOWN)}")
        out[name] = value
    return out


def _kwdefault(fn: Any, name: str, value: object) -> None:
    """Change the default of a keyword-only parameter (the callers pass none)."""
    defaults = fn.__kwdefaults__
    if defaults is None or name not in defaults:
        raise RuntimeError(f"{fn.__qualname__} has no keyword-only parameter {name!r} any more")
    defaults[name] = value


def apply(patches: dict[str, str]) -> None:
    if "rsa_skip" in patches:
        from jwcrypto import jwk

        def _rsa_pri(self: Any) -> Any:
            key = self._cache_pri_k
            if key is None:
                key = self._rsa_pri_n().private_key(unsafe_skip_rsa_key_validation=True)
                self._cache_pri_k = key
            return key

        jwk.JWK._rsa_pri = _rsa_pri
    if "keys_ttl" in patches:
        from oneauth.tokens.keystore import KeyStore

        _kwdefault(KeyStore.__init__, "ttl", float(patches["keys_ttl"]))
    if "hasher_threads" in patches:
        from oneauth.identity.passwords import PasswordHasher

        _kwdefault(PasswordHasher.__init__, "max_workers", int(patches["hasher_threads"]))

    if "affinity" in patches:
        _affinity(int(patches["affinity"]))


_APP: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_app", default=None)


class _ShardedPool:
    """K asyncpg pools behind the one-pool interface the service uses."""

    def __init__(self, pools: list[Any]) -> None:
        self.pools = pools
        self._owner: dict[int, Any] = {}

    def __getattr__(self, name: str) -> Any:  # fetchrow, fetch, execute ... on shard 0
        return getattr(self.pools[0], name)

    async def acquire(self) -> Any:
        app = _APP.get()
        pool = self.pools[zlib.crc32(app.encode()) % len(self.pools)] if app else self.pools[0]
        conn = await pool.acquire()
        self._owner[id(conn)] = pool
        return conn

    async def release(self, conn: Any) -> None:
        await self._owner.pop(id(conn), self.pools[0]).release(conn)

    async def close(self) -> None:
        for pool in self.pools:
            await pool.close()


def _affinity(shards: int) -> None:
    from oneauth import asgi
    from oneauth.db import pool as poolmod
    from oneauth.db.router import Router

    original_create, original_enter = poolmod.create_pool, Router.enter

    async def create_pool(settings: Any, **overrides: Any) -> Any:
        size = max(1, settings.pool_max_size // shards)
        pools = [
            await original_create(settings, min_size=1, max_size=size, **overrides)
            for _ in range(shards)
        ]
        return _ShardedPool(pools)

    @contextlib.asynccontextmanager
    async def enter(self: Any, record: Any) -> AsyncIterator[Any]:
        token = _APP.set(record.app_id)
        try:
            async with original_enter(self, record) as conn:
                yield conn
        finally:
            _APP.reset(token)

    asgi.create_pool = create_pool  # type: ignore[attr-defined]
    Router.enter = enter  # type: ignore[method-assign]


apply(parse(os.environ.get("BENCH_WHATIF", "")))

if __name__ == "__main__":
    from oneauth.cli.main import main

    main(sys.argv[1:])
