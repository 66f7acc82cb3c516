"""Database work per request, from pg_stat_database around a scenario.

Postgres 15 backends flush their counters at most once a second (and when
idle), so over runs of several seconds the per-request figures are close but
approximate ("≈" in the report). They say how many transactions, and how
many rows read and written, one request costs: the first thing to look at
when a scenario is far below the bare asyncpg limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

FIELDS = (
    "tup_returned",
    "xact_commit",
    "xact_rollback",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "blks_read",
    "blks_hit",
)


def snapshot(admin_dsn: str, database: str) -> dict[str, int]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT {', '.join(FIELDS)} FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
    return {} if row is None else {k: int(v or 0) for k, v in zip(FIELDS, row, strict=True)}


def per_request(before: dict[str, int], after: dict[str, int], requests: int) -> dict[str, Any]:
    if not before or not after or requests <= 0:
        return {}
    return {k: round((after[k] - before[k]) / requests, 2) for k in FIELDS}


# Rows read per table, summed over all app schemas (app.*), the control schema
# and the catalogs: which table a scenario really reads, and how (seq or index).
_TABLES = """
SELECT CASE WHEN schemaname LIKE 'app\\_%' THEN 'app.' ELSE schemaname || '.' END || relname,
       sum(coalesce(seq_scan, 0)), sum(coalesce(seq_tup_read, 0)),
       sum(coalesce(idx_scan, 0)), sum(coalesce(idx_tup_fetch, 0))
FROM pg_stat_all_tables
GROUP BY 1
"""


def table_snapshot(dsn: str) -> dict[str, tuple[int, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(_TABLES).fetchall()
    return {str(r[0]): tuple(int(x or 0) for x in r[1:]) for r in rows}


Snapshot = Mapping[str, tuple[int, ...]]


def top_tables(
    before: Snapshot,
    after: Snapshot,
    requests: int,
    n: int = 6,
    own_cost: tuple[Snapshot, Snapshot] | None = None,
) -> list[dict[str, Any]]:
    """The tables with the most rows read per request, with their scan kinds.

    ``own_cost``: two back-to-back snapshots; their difference (the reads of
    one snapshot query) is subtracted, since the "before" snapshot's own reads
    fall inside the interval.
    """
    if requests <= 0:
        return []
    zero = (0, 0, 0, 0)
    out: list[dict[str, Any]] = []
    for name, now in after.items():
        was = before.get(name, zero)
        d = [b - a for a, b in zip(was, now, strict=True)]
        if own_cost is not None:
            first, second = own_cost[0].get(name, zero), own_cost[1].get(name, zero)
            d = [max(0, x - (b - a)) for x, a, b in zip(d, first, second, strict=True)]
        rows = d[1] + d[3]
        if rows > 0:
            out.append(
                {
                    "table": name,
                    "rows_per_request": round(rows / requests, 2),
                    "seq_scans_per_request": round(d[0] / requests, 3),
                    "seq_rows_per_request": round(d[1] / requests, 2),
                    "idx_scans_per_request": round(d[2] / requests, 3),
                }
            )
    out.sort(key=lambda x: -x["rows_per_request"])
    return out[:n]
