"""An app's audit log in its admin API (issue 15, A2): ``/apps/{app_id}/admin/v1/audit``.

    GET  /audit              query: ?from=&to=&event=&actor=&target=&outcome=&cursor=&limit=
    GET  /audit/export       NDJSON, streamed in keyset batches (bounded memory)
    POST /audit/verify       the hash chain checked against the log and the checkpoints
    GET  /audit/checkpoints  the signed checkpoints (keyset pages by seq)

All need ``admin:audit:read``. The export and the verification are audited
(``admin.audit.export``, ``admin.audit.verify``): reading the whole log is
itself worth a row. Views are thin: parse, call :mod:`oneauth.auditchain`,
serialize.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from oneauth.admin.guard import AdminCaller, admin_operation, audit
from oneauth.admin.models import (
    AuditCheckpoint,
    AuditCheckpointPage,
    AuditEntry,
    AuditExportQuery,
    AuditPage,
    AuditQuery,
    AuditVerification,
    PageQuery,
)
from oneauth.admin.pagination import decode_cursor, next_cursor, query
from oneauth.auditchain import checkpoints, repo
from oneauth.auditchain.verify import export_line, verify_chain
from oneauth.http.contract import Operation, json_response
from oneauth.services import Services

PREFIX = "/admin/v1"
NO_STORE = {"cache-control": "no-store"}
SCOPE = "admin:audit:read"
EXPORT_BATCH = 500


def _entry(row: asyncpg.Record) -> AuditEntry:
    digest = row["row_hash"]
    return AuditEntry(
        id=int(row["id"]),
        occurred_at=row["occurred_at"].isoformat(),
        event=row["event"],
        outcome=row["outcome"],
        actor_type=row["actor_type"],
        actor_id=row["actor_id"],
        target_type=row["target_type"],
        target_id=row["target_id"],
        request_id=row["request_id"],
        ip_hash=row["ip_hash"],
        user_agent=row["user_agent"],
        details=json.loads(row["details"]),
        row_hash=None if digest is None else bytes(digest).hex(),
    )


@admin_operation(
    Operation(
        "Query the app's audit log (newest first; keyset pages)",
        query=AuditQuery,
        responses={200: AuditPage},
        errors=(422,),
    ),
    scope=SCOPE,
)
async def list_audit(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    q = query(request, AuditQuery)
    after = decode_cursor(q.cursor, {"id": int})
    rows = await repo.query(
        conn,
        since=q.since,
        until=q.until,
        event=q.event,
        actor=q.actor,
        target=q.target,
        outcome=q.outcome,
        before_id=after["id"] if after else None,
        limit=q.limit + 1,
    )
    page = AuditPage(
        items=[_entry(r) for r in rows[: q.limit]], next_cursor=next_cursor(rows, q.limit, "id")
    )
    return json_response(page, headers=NO_STORE)


@admin_operation(
    Operation(
        "Export the app's audit log as NDJSON (one row per line, with its chain entry)",
        query=AuditExportQuery,
        responses={200: str},
        errors=(422,),
        media_type="application/x-ndjson",
    ),
    scope=SCOPE,
)
async def export_audit(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    q = query(request, AuditExportQuery)
    await audit(
        conn,
        caller,
        "admin.audit.export",
        details={
            "from": None if q.since is None else q.since.isoformat(),
            "to": None if q.until is None else q.until.isoformat(),
        },
    )
    services = Services.of(request)
    app = caller.app

    async def lines() -> AsyncIterator[bytes]:
        # Each batch in a short transaction of its own (keyset on id): a slow
        # reader holds no connection between batches, and memory stays one batch.
        after = 0
        while True:
            async with services.router.enter(app) as stream:
                rows = await repo.export_batch(stream, after, q.since, q.until, EXPORT_BATCH)
            if not rows:
                return
            yield b"".join(export_line(r) for r in rows)
            if len(rows) < EXPORT_BATCH:
                return
            after = int(rows[-1]["id"])

    return StreamingResponse(lines(), media_type="application/x-ndjson", headers=NO_STORE)


@admin_operation(
    Operation(
        "Verify the app's audit chain (changed, deleted, inserted, reordered or rewritten rows)",
        responses={200: AuditVerification},
    ),
    scope=SCOPE,
)
async def verify_audit(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    services = Services.of(request)

    async def load() -> list[dict[str, Any]]:
        # The control schema is the service role's, not the app role's: its own connection.
        async with services.pool.acquire() as control:
            rows = await repo.checkpoints(control, caller.app.app_id)
        return [checkpoints.export_row(r) for r in rows]

    report = await verify_chain(
        conn, app_id=caller.app.app_id, load_checkpoints=load, box=services.box
    )
    await audit(
        conn,
        caller,
        "admin.audit.verify",
        "success" if report.ok else "failure",
        details={"intact": report.ok, "problems": len(report.problems)},
    )
    return json_response(msgspec.convert(report.as_dict(), AuditVerification), headers=NO_STORE)


@admin_operation(
    Operation(
        "List the signed checkpoints of the app's audit chain (oldest first; keyset pages)",
        query=PageQuery,
        responses={200: AuditCheckpointPage},
        errors=(422,),
    ),
    scope=SCOPE,
)
async def list_checkpoints(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    q = query(request, PageQuery)
    after = decode_cursor(q.cursor, {"seq": int})
    services = Services.of(request)
    async with services.pool.acquire() as control:
        rows = await repo.checkpoints(
            control, caller.app.app_id, after_seq=after["seq"] if after else 0, limit=q.limit + 1
        )
    items = [msgspec.convert(checkpoints.export_row(r), AuditCheckpoint) for r in rows[: q.limit]]
    page = AuditCheckpointPage(items=items, next_cursor=next_cursor(rows, q.limit, "seq"))
    return json_response(page, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/audit", list_audit, methods=["GET"]),
        Route(f"{PREFIX}/audit/export", export_audit, methods=["GET"]),
        Route(f"{PREFIX}/audit/verify", verify_audit, methods=["POST"]),
        Route(f"{PREFIX}/audit/checkpoints", list_checkpoints, methods=["GET"]),
    ]
