"""The service's asyncpg pool.

Connections carry no session state of ours: the router sets role and
search_path transaction-locally, so a connection is clean again at COMMIT or
ROLLBACK and safe to share through PgBouncer in transaction mode. The pool's
reset therefore only rolls back a stray transaction (asyncpg does that before
calling ours) and costs no extra round trip.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from oneauth.settings import Settings


class RoutedConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that remembers which app schemas it has entered.

    Postgres caches catalog entries for every schema a backend touches and never
    frees them; the router replaces a connection once this set grows too large.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.oneauth_apps: set[str] = set()


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    # Nothing to undo: all our settings are transaction-local (see module doc).
    return None


async def create_pool(settings: Settings, **overrides: Any) -> asyncpg.Pool:
    options: dict[str, Any] = {
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "max_queries": settings.pool_max_queries,
        "max_inactive_connection_lifetime": 300.0,
        "connection_class": RoutedConnection,
        "reset": _no_session_reset,
        "server_settings": {"application_name": "oneauth"},
        "command_timeout": 30,
    }
    options.update(overrides)
    pool = await asyncpg.create_pool(settings.database_url, **options)
    assert pool is not None
    return pool
