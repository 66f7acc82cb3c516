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


# pg_stat_statements (``--statements``): entries are per role, and every app has its
# own, so the same statement text is summed over all apps (without the app's tag
# that a kept app's texts start with: oneauth.db.router.statement_tag). The
# admin's own reads (these snapshots, the table snapshots) are left out.
_STATEMENTS = """
SELECT regexp_replace(regexp_replace(query, '^/\\*[a-z0-9_]+\\*/ ', ''), '\\s+', ' ', 'g'),
       sum(calls), sum(plans),
       sum(total_plan_time), sum(total_exec_time)
FROM pg_stat_statements
WHERE userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
GROUP BY 1
"""

StatementTotals = Mapping[str, tuple[float, ...]]  # text -> (calls, plans, plan ms, exec ms)
NO_STATEMENTS: tuple[StatementTotals, int] = ({}, 0)


def statements_snapshot(dsn: str) -> tuple[StatementTotals, int]:
    """Totals per statement text, and pg_stat_statements' evictions so far."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(_STATEMENTS).fetchall()
        info = conn.execute("SELECT dealloc FROM pg_stat_statements_info").fetchone()
    totals = {str(r[0]): tuple(float(x or 0) for x in r[1:]) for r in rows}
    return totals, int(info[0]) if info else 0


def statements_per_request(
    before: tuple[StatementTotals, int],
    after: tuple[StatementTotals, int],
    requests: int,
    top: int = 5,
) -> dict[str, Any]:
    """Statements, plans and Postgres milliseconds per request, and the costliest texts.

    Background work that ran meanwhile (the audit sealer, retention) is counted
    too, like its CPU: it is part of what the load costs. ``evicted`` > 0 means
    some entries were dropped in between and the figures are low.
    """
    if requests <= 0:
        return {}
    zero = (0.0, 0.0, 0.0, 0.0)
    diffs: list[tuple[str, list[float]]] = []
    for text, now in after[0].items():
        was = before[0].get(text, zero)
        d = [b - a for a, b in zip(was, now, strict=True)]
        if d[0] > 0 or d[1] > 0:
            diffs.append((text, d))
    total = [sum(d[i] for _, d in diffs) for i in range(4)]
    diffs.sort(key=lambda x: -(x[1][2] + x[1][3]))
    return {
        "statements": round(total[0] / requests, 2),
        "plans": round(total[1] / requests, 2),
        "plan_ms": round(total[2] / requests, 3),
        "exec_ms": round(total[3] / requests, 3),
        "evicted": after[1] - before[1],
        "top": [
            {
                "statement": text[:160],
                "calls": round(d[0] / requests, 3),
                "plans": round(d[1] / requests, 3),
                "plan_ms": round(d[2] / requests, 3),
                "exec_ms": round(d[3] / requests, 3),
            }
            for text, d in diffs[:top]
        ],
    }
