"""Verify an app's audit chain against its log and its signed checkpoints (A2).

Shared by ``oneauth audit verify`` and ``POST /apps/{app_id}/admin/v1/audit/verify``.
The chain and the log are read in bounded batches (keyset on id), so memory
does not grow with the log.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from oneauth.auditchain import checkpoints, repo
from oneauth.auditchain.chain import COLUMNS, ChainCheck, Problem, Report, micros
from oneauth.secretbox import SecretBox

BATCH = 2000


async def verify_chain(
    conn: asyncpg.Connection,
    *,
    app_id: str,
    load_checkpoints: Callable[[], Awaitable[list[dict[str, Any]]]],
    box: SecretBox | None,
    kept_checkpoints: list[dict[str, Any]] | None = None,
) -> Report:
    """``conn`` in the app's context. ``load_checkpoints`` reads the app's checkpoints
    (as ``checkpoints.export_row`` gives them) from the control schema, which the app
    role cannot read; it is called once the sealer is held off, so a prune that
    completed before is seen with its checkpoint."""
    # No sealing or pruning while the batches are read (in READ COMMITTED each
    # statement has its own snapshot): a prune between two reads would look
    # like deleted rows.
    await repo.hold_sealer(conn, app_id)
    stored_checkpoints = await load_checkpoints()
    problems: list[Problem] = []
    listed = stored_checkpoints
    if kept_checkpoints is not None:
        listed, problems = checkpoints.merge_exported(stored_checkpoints, kept_checkpoints)
    anchors, cp_problems = checkpoints.verify_all(listed, app_id=app_id, box=box)
    current = await repo.head(conn)
    check = ChainCheck(app_id, anchors, None if current is None else current[0])
    check.report.problems.extend(problems + cp_problems)
    after = 0
    while not check.done:
        chain = await repo.chain_batch(conn, after, BATCH)
        if chain:
            upto = chain[-1][0]
            logs = await repo.log_range(conn, after, upto)
        else:
            logs = await repo.log_after(conn, after, BATCH)
            if not logs:
                break
            upto = int(logs[-1]["id"])
        check.feed(logs, chain, upto)
        after = upto
    report = check.finish()
    report.problems.sort(key=lambda p: (p.audit_id is None, p.audit_id or 0))
    return report


def export_line(row: Any) -> bytes:
    """One NDJSON line: every column, the chain entry (hex), and occurred_at in µs."""
    record: dict[str, Any] = {}
    for column in COLUMNS:
        value = row[column]
        if column == "occurred_at":
            record["occurred_at"] = value.isoformat()
            record["occurred_at_us"] = micros(value)
        elif column == "details":
            record["details"] = json.loads(value) if isinstance(value, str) else value
        else:
            record[column] = value
    prev_hash, row_hash = row["prev_hash"], row["row_hash"]
    record["prev_hash"] = None if prev_hash is None else bytes(prev_hash).hex()
    record["row_hash"] = None if row_hash is None else bytes(row_hash).hex()
    return (
        json.dumps(record, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode()
        + b"\n"
    )


async def export_ndjson(
    conn: asyncpg.Connection, *, since: Any = None, until: Any = None, batch: int = 500
) -> AsyncIterator[bytes]:
    async for rows in repo.export_rows(conn, since=since, until=until, batch=batch):
        yield b"".join(export_line(r) for r in rows)
