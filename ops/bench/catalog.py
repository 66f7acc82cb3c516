"""What one app schema costs a Postgres backend: the term of the memory bound.

A backend keeps the catalog and relation-cache entries of every relation it
has planned a query on, for the rest of its life. The router replaces a pooled
connection once it has entered ``pool_max_apps_per_connection`` apps, so the
private memory of one service backend is bounded by

    baseline + max_apps_per_connection x (cache of one app schema, every table used)

    + database_statement_cache_size x (one kept app statement's plans)

where the baseline is what a backend of the service holds while it knows one
app (its prepared statements included: the one-app stage measures it). This
module measures the second term on the bench's own cluster: a fresh backend
of the service's login role enters ``samples`` apps the way the router does
and plans a query on every table of each schema; the growth of its anonymous
memory, divided by the apps entered after the first, is the cost of one app.
The third: the apps a connection keeps plans for (oneauth.db.pool.plan_tag)
each prepare their own copy of a statement, at most the statement cache's size
in all; ``per_statement_cost`` prepares copies of the largest ones a request
sends and runs each until Postgres keeps its generic plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from ops.bench.procstat import cmdline, smaps_rollup_kib
from psycopg import sql

from oneauth.apps import lifecycle
from oneauth.db.naming import AppNames
from oneauth.sessions import repo

_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1
"""


class NotLocal(RuntimeError):
    """The server's backend is not a process this machine can read."""


def _anonymous_kib(pid: int) -> int:
    fields = smaps_rollup_kib(pid) if cmdline(pid).startswith("postgres:") else {}
    if "Anonymous" not in fields:
        raise NotLocal(f"cannot read backend {pid}'s memory: is Postgres on this machine?")
    return fields["Anonymous"]


def _enter_and_touch(conn: psycopg.Connection[Any], names: AppNames) -> int:
    with conn.transaction():
        conn.execute(
            "SELECT set_config('role', %s, true), set_config('search_path', %s, true)",
            (names.role, names.schema),
        )
        tables = [r[0] for r in conn.execute(_TABLES, (names.schema,)).fetchall()]
        for table in tables:
            conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(table)))
    return len(tables)


def per_app_cost(dsn: str, app_ids: Sequence[str]) -> dict[str, Any] | None:
    """Private memory one more app schema adds to a backend, in KiB (None: < 2 apps)."""
    if len(app_ids) < 2:
        return None
    with psycopg.connect(dsn) as conn:
        # Read from the registry before any app role is set in this session's transaction.
        names = [lifecycle.names_of(conn, app_id) for app_id in app_ids]
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        _enter_and_touch(conn, names[0])
        before = _anonymous_kib(pid)
        tables = sum(_enter_and_touch(conn, n) for n in names[1:])
        after = _anonymous_kib(pid)
    apps = len(app_ids) - 1
    return {
        "kib_per_app": round((after - before) / apps, 1),
        "apps": apps,
        "tables_per_app": round(tables / apps, 1),
        "method": "growth of one fresh backend's Anonymous memory while it enters "
        "apps as the router does and plans a query on every table of each",
    }


# The largest statements of a refresh (rotation, and the look at a token that did
# not rotate), with arguments that match no row: planned as in service, no write.
_LARGEST = (
    (repo._ROTATE, (b"\x00" * 32, "bench", b"\x01" * 32, 60, None, b"")),
    (repo._SEEN, (b"\x00" * 32, "bench", 5.0)),
)
# Executions per copy: five custom plans, then the generic plan Postgres keeps.
_RUNS = 6


def per_statement_cost(dsn: str, app_id: str, copies: int = 40) -> dict[str, Any]:
    """Private memory one kept copy of the largest statements adds to a backend, KiB."""
    with psycopg.connect(dsn) as conn:
        names = lifecycle.names_of(conn, app_id)
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        conn.prepared_max = copies * len(_LARGEST) + 10
        cur = psycopg.RawCursor(conn)
        worst = 0.0
        for text, args in _LARGEST:
            before = _anonymous_kib(pid)
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('role', %s, true), set_config('search_path', %s, true)",
                    (names.role, names.schema),
                )
                for i in range(copies):
                    for _ in range(_RUNS):
                        cur.execute(f"/*copy{i}*/ {text}", args, prepare=True)
            worst = max(worst, (_anonymous_kib(pid) - before) / copies)
    return {
        "kib_per_statement": round(worst, 1),
        "copies": copies,
        "method": "growth of one backend's Anonymous memory per prepared copy of the "
        "refresh's largest statements (rotation; token look-up), each run until its "
        "generic plan is kept; the largest of the two",
    }
