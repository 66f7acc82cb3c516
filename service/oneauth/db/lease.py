"""Named leases in the control schema (``oneauth.leases``, sql/control/0011).

One holder per name in the whole installation: a job that must not run twice at
once (the retention cycle, the audit sealer's rounds) takes its lease when it is
free, expired or already its own, renews it as it goes and releases it at the
end. Each call is one statement, so it works through PgBouncer in transaction
mode, where a session-level advisory lock does not. A holder that dies leaves
its lease to expire; a holder that outlives its lease may find another beside
it, so whatever a lease guards must stay correct when run twice (it only saves
the duplicate work).
"""

from __future__ import annotations

import os
import secrets
import socket

import asyncpg

LEAD_SQL = """
INSERT INTO oneauth.leases AS l (name, holder, until)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
    WHERE l.until <= now() OR l.holder = excluded.holder
RETURNING holder
"""
RENEW_SQL = (
    "UPDATE oneauth.leases SET until = now() + make_interval(secs => $3)"
    " WHERE name = $1 AND holder = $2 RETURNING holder"
)
RELEASE_SQL = "UPDATE oneauth.leases SET until = now() WHERE name = $1 AND holder = $2"


def holder_name() -> str:
    """A name for this process's holder: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def try_lead(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, holder: str, seconds: float
) -> bool:
    """Take lease ``name`` for ``holder`` if it is free, expired or already ``holder``'s."""
    return await conn.fetchval(LEAD_SQL, name, holder, seconds) is not None


async def renew(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, holder: str, seconds: float
) -> bool:
    """Extend ``holder``'s lease; False if another holder took it meanwhile."""
    return await conn.fetchval(RENEW_SQL, name, holder, seconds) is not None


async def release(conn: asyncpg.Connection | asyncpg.Pool, name: str, holder: str) -> None:
    """Let the next holder take it now (nothing if ``holder`` lost it meanwhile)."""
    await conn.execute(RELEASE_SQL, name, holder)
