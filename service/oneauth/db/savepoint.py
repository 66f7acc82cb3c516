"""A savepoint inside the router's transaction.

The router opens its unit with a plain ``BEGIN`` (one round trip with the role
and search_path), so asyncpg's ``Connection.transaction()`` refuses to nest in
it; this is the same with SQL: an error inside rolls back to the savepoint and
leaves the unit usable (e.g. a unique violation answered as a 409, a lock
timeout answered as a 409).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

__all__ = ["savepoint"]


@contextlib.asynccontextmanager
async def savepoint(conn: asyncpg.Connection, name: str = "oneauth_sp") -> AsyncIterator[None]:
    if not name.isidentifier():
        raise ValueError("savepoint names are identifiers")
    await conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if not conn.is_closed():
            await conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
        raise
    await conn.execute(f"RELEASE SAVEPOINT {name}")
