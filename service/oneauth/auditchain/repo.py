"""SQL of the audit chain; every function takes the connection first.

App-schema functions run in the app's context (router); control-schema ones on
a service (or operator) connection outside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import asyncpg

from oneauth.auditchain.chain import SELECT_COLUMNS
from oneauth.auditchain.checkpoints import COLUMNS as CHECKPOINT_COLUMNS
from oneauth.auditchain.checkpoints import Draft
from oneauth.db.ops import LOCK_NAMESPACE

# --- app schema ---------------------------------------------------------------------


async def try_lead(conn: asyncpg.Connection, app_id: str) -> bool:
    """The per-app sealer leadership, for this transaction (one sealer per app at a time)."""
    return bool(
        await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
            LOCK_NAMESPACE,
            f"audit-seal:{app_id}",
        )
    )


async def hold_sealer(conn: asyncpg.Connection, app_id: str) -> None:
    """Wait for the app's sealer to finish its visit and keep it out for this
    transaction: a verification sees no row sealed or pruned while it reads."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, f"audit-seal:{app_id}"
    )


async def allocated(conn: asyncpg.Connection) -> int:
    """The highest audit id handed out so far (committed or not): the sequence's last value."""
    value = await conn.fetchval(
        "SELECT pg_sequence_last_value(pg_get_serial_sequence('audit_log', 'id')::regclass)"
    )
    return int(value or 0)


# Transactions that may still commit audit rows: every INSERT holds ROW EXCLUSIVE
# on audit_log from before it draws its id until its transaction has ended (and is
# visible to new snapshots). pg_locks lists them whatever role they run as.
_WRITERS = (
    "SELECT coalesce(array_agg(virtualtransaction), '{}') FROM pg_locks"
    " WHERE locktype = 'relation' AND mode = 'RowExclusiveLock'"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND relation = 'audit_log'::regclass AND pid IS DISTINCT FROM pg_backend_pid()"
)


async def writers(conn: asyncpg.Connection) -> frozenset[str]:
    return frozenset(await conn.fetchval(_WRITERS))


async def head(conn: asyncpg.Connection) -> tuple[int, bytes] | None:
    row = await conn.fetchrow(
        "SELECT audit_id, row_hash FROM audit_chain ORDER BY audit_id DESC LIMIT 1"
    )
    return None if row is None else (int(row[0]), bytes(row[1]))


async def chain_hash(conn: asyncpg.Connection, audit_id: int) -> bytes | None:
    value = await conn.fetchval("SELECT row_hash FROM audit_chain WHERE audit_id = $1", audit_id)
    return None if value is None else bytes(value)


async def insert_chain(conn: asyncpg.Connection, sealed: list[tuple[int, bytes, bytes]]) -> None:
    await conn.execute(
        "INSERT INTO audit_chain (audit_id, prev_hash, row_hash)"
        " SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])",
        [s[0] for s in sealed],
        [s[1] for s in sealed],
        [s[2] for s in sealed],
    )


async def oldest(conn: asyncpg.Connection, limit: int) -> list[tuple[int, datetime]]:
    rows = await conn.fetch("SELECT id, occurred_at FROM audit_log ORDER BY id LIMIT $1", limit)
    return [(int(r[0]), r[1]) for r in rows]


async def prune(conn: asyncpg.Connection, through: int, before: datetime) -> int:
    return int(await conn.fetchval("SELECT audit_prune($1, $2)", through, before))


async def chain_batch(
    conn: asyncpg.Connection, after: int, limit: int
) -> list[tuple[int, bytes, bytes]]:
    rows = await conn.fetch(
        "SELECT audit_id, prev_hash, row_hash FROM audit_chain WHERE audit_id > $1"
        " ORDER BY audit_id LIMIT $2",
        after,
        limit,
    )
    return [(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]


async def log_range(conn: asyncpg.Connection, after: int, upto: int) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {SELECT_COLUMNS} FROM audit_log WHERE id > $1 AND id <= $2 ORDER BY id",
            after,
            upto,
        )
    )


async def log_after(conn: asyncpg.Connection, after: int, limit: int) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {SELECT_COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
            after,
            limit,
        )
    )


_JOINED = ", ".join("l." + c for c in SELECT_COLUMNS.split(", "))


async def export_batch(
    conn: asyncpg.Connection,
    after: int,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Audit rows after id ``after`` with their chain entries, in id order (keyset)."""
    return list(
        await conn.fetch(
            f"SELECT {_JOINED}, c.prev_hash, c.row_hash FROM audit_log l"
            " LEFT JOIN audit_chain c ON c.audit_id = l.id"
            " WHERE l.id > $1 AND ($2::timestamptz IS NULL OR l.occurred_at >= $2)"
            " AND ($3::timestamptz IS NULL OR l.occurred_at < $3) ORDER BY l.id LIMIT $4",
            after,
            since,
            until,
            limit,
        )
    )


async def export_rows(
    conn: asyncpg.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = 500,
) -> AsyncIterator[list[asyncpg.Record]]:
    """``export_batch`` after ``export_batch``: memory stays one batch whatever the log's size."""
    after = 0
    while True:
        rows = await export_batch(conn, after, since, until, batch)
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        after = int(rows[-1]["id"])


async def query(
    conn: asyncpg.Connection,
    *,
    since: datetime | None,
    until: datetime | None,
    event: str | None,
    actor: str | None,
    target: str | None,
    outcome: str | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first, keyset on id (the cursor is the last id shown)."""
    return list(
        await conn.fetch(
            f"SELECT {_JOINED}, c.row_hash FROM audit_log l"
            " LEFT JOIN audit_chain c ON c.audit_id = l.id"
            " WHERE ($1::bigint IS NULL OR l.id < $1)"
            " AND ($2::timestamptz IS NULL OR l.occurred_at >= $2)"
            " AND ($3::timestamptz IS NULL OR l.occurred_at < $3)"
            " AND ($4::text IS NULL OR l.event = $4"
            " OR l.event LIKE replace($4, '_', '\\_') || '.%')"
            " AND ($5::text IS NULL OR l.actor_id = $5)"
            " AND ($6::text IS NULL OR l.target_id = $6)"
            " AND ($7::text IS NULL OR l.outcome = $7)"
            " ORDER BY l.id DESC LIMIT $8",
            before_id,
            since,
            until,
            event,
            actor,
            target,
            outcome,
            limit,
        )
    )


# --- control schema -------------------------------------------------------------------


async def last_checkpoint(conn: asyncpg.Connection, app_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {CHECKPOINT_COLUMNS} FROM oneauth.audit_checkpoints WHERE app_id = $1"
        " ORDER BY seq DESC LIMIT 1",
        app_id,
    )
    return row


async def insert_checkpoint(conn: asyncpg.Connection, draft: Draft) -> None:
    await conn.execute(
        "INSERT INTO oneauth.audit_checkpoints (app_id, seq, kind, audit_id, row_hash,"
        " pruned_through, jws, kid, public_jwk, key_proof)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10)",
        draft.app_id,
        draft.seq,
        draft.kind,
        draft.audit_id,
        draft.row_hash,
        draft.pruned_through,
        draft.jws,
        draft.kid,
        _json(draft.public_jwk),
        draft.key_proof,
    )


async def checkpoints(
    conn: asyncpg.Connection, app_id: str, *, after_seq: int = 0, limit: int | None = None
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {CHECKPOINT_COLUMNS} FROM oneauth.audit_checkpoints"
            " WHERE app_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            app_id,
            after_seq,
            limit,
        )
    )


_SWEEP_STATE = (
    "SELECT app_id, inserts, checkpoint_due_at - now() AS checkpoint_wait,"
    " prune_due_at - now() AS prune_wait FROM oneauth.audit_sweep"
)
# Every save moves this table's own write counter; zero (with rows saved) means the
# statistics were reset since (a crash) and the saved counters are from another epoch.
_STATE_WRITES = (
    "SELECT pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_tuples_updated(c.oid)"
    " FROM pg_class c WHERE c.oid = 'oneauth.audit_sweep'::regclass"
)
# audit_log inserts per app schema (cumulative statistics, no right on the tables needed).
AUDIT_INSERTS = (
    "SELECT n.nspname AS schemaname, pg_stat_get_tuples_inserted(c.oid) AS inserts"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relname = 'audit_log' AND c.relkind IN ('r', 'p')"
)


async def sweep_state(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], bool]:
    rows = list(await conn.fetch(_SWEEP_STATE))
    trusted = bool(await conn.fetchval(_STATE_WRITES)) or not rows
    return rows, trusted


async def save_sweep_state(
    conn: asyncpg.Connection,
    state: Mapping[str, tuple[int, float | None, float | None]],
) -> None:
    """(inserts counter, seconds until checkpoint due, seconds until prune due) per app."""
    ids = sorted(state)
    await conn.execute(
        "INSERT INTO oneauth.audit_sweep AS s (app_id, inserts, checkpoint_due_at, prune_due_at)"
        " SELECT a, i, now() + make_interval(secs => c), now() + make_interval(secs => p)"
        " FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[]) AS t (a, i, c, p)"
        " WHERE EXISTS (SELECT FROM oneauth.apps WHERE app_id = t.a)"
        " ON CONFLICT (app_id) DO UPDATE SET inserts = excluded.inserts,"
        " checkpoint_due_at = excluded.checkpoint_due_at, prune_due_at = excluded.prune_due_at,"
        " updated_at = now()",
        ids,
        [state[a][0] for a in ids],
        [state[a][1] for a in ids],
        [state[a][2] for a in ids],
    )


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), sort_keys=True)
