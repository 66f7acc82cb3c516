"""The retention workers' shared record of visits (``oneauth.retention_sweep``, control schema)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from oneauth.db import lease

# One retention cycle at a time in the whole installation (R3): the lease
# "retention" (oneauth.db.lease), taken when free or expired and renewed as the
# cycle goes (after every chunk of apps), released at its end. A worker that dies
# mid-cycle leaves the lease to expire after LEASE_SECONDS. Should a chunk outlast
# the lease, a second worker may start a cycle beside the first: duplicate work,
# never wrong (each delete is a bounded re-checked batch; the audit prune has its
# own per-app lock).
LEASE = "retention"
LEASE_SECONDS = 120.0


async def try_lead(
    conn: asyncpg.Connection | asyncpg.Pool, holder: str, seconds: float = LEASE_SECONDS
) -> bool:
    """Take the lease for ``holder`` if it is free, expired or already ``holder``'s."""
    return await lease.try_lead(conn, LEASE, holder, seconds)


async def renew(
    conn: asyncpg.Connection | asyncpg.Pool, holder: str, seconds: float = LEASE_SECONDS
) -> bool:
    """Extend ``holder``'s lease; False if another worker took it meanwhile."""
    return await lease.renew(conn, LEASE, holder, seconds)


async def release(conn: asyncpg.Connection | asyncpg.Pool, holder: str) -> None:
    await lease.release(conn, LEASE, holder)


async def trusted(conn: asyncpg.Connection) -> bool:
    """Whether the counters recorded can be compared with the statistics now.

    This table's own write counter comes back to zero only with a statistics
    reset (a crash, pg_stat_reset): then the recorded counters are from another
    epoch and compare equal to nothing (as oneauth.mail_sweep), and every app is
    visited once.
    """
    writes = await conn.fetchval(
        "SELECT pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_tuples_updated(c.oid)"
        " FROM pg_class c WHERE c.oid = 'oneauth.retention_sweep'::regclass"
    )
    return bool(writes)


async def save(
    conn: asyncpg.Connection,
    visits: dict[str, tuple[int, datetime | None, int | None, bool]],
) -> None:
    """Record (counter read before the visit, next due, audit days, visited) per app."""
    if not visits:
        return
    ids = sorted(visits)
    await conn.execute(
        "INSERT INTO oneauth.retention_sweep AS s"
        " (app_id, changes, next_due_at, audit_days, visited_at)"
        " SELECT a, c, d, r, CASE WHEN v THEN now() END"
        " FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::int[], $5::bool[])"
        " AS t (a, c, d, r, v)"
        " WHERE EXISTS (SELECT FROM oneauth.apps WHERE app_id = t.a)"
        " ON CONFLICT (app_id) DO UPDATE SET changes = excluded.changes,"
        " next_due_at = excluded.next_due_at, audit_days = excluded.audit_days,"
        " visited_at = coalesce(excluded.visited_at, s.visited_at), updated_at = now()",
        ids,
        [visits[a][0] for a in ids],
        [visits[a][1] for a in ids],
        [visits[a][2] for a in ids],
        [visits[a][3] for a in ids],
    )
