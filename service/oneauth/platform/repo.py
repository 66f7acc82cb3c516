"""The platform API's SQL on the control schema (asyncpg, the service's login role).

Views run in the platform app's router transaction (its audit_log is the
control-plane log); :func:`control` steps out of the platform app's role for the
control-schema statements within that same transaction, so a queued job, its
Idempotency-Key record and its audit row commit together or not at all.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from oneauth.apps.models import REGISTRY_COLUMNS, AppRecord, record_from_row
from oneauth.db.naming import CONTROL_SCHEMA, RESERVED_APP_IDS, quote_ident

_RESERVED = sorted(RESERVED_APP_IDS)
JOB_COLUMNS = "id, kind, app_id, status, result, created_at, finished_at, params, actor_client_id"


@contextlib.asynccontextmanager
async def control(conn: asyncpg.Connection, platform: AppRecord) -> AsyncIterator[None]:
    """The service's login role (SERVICE_PRIVILEGES on the control schema, D1) for the
    statements inside; the platform app's role again afterwards.

    The router made the connection the platform app's role, which has no rights
    on the control schema; all settings here are transaction-local."""
    await conn.execute(
        "SELECT set_config('role', 'none', true), set_config('search_path', $1, true)",
        quote_ident(CONTROL_SCHEMA),
    )
    yield
    # Not in a finally: after an error the unit is rolled back and this would fail.
    await conn.execute(
        "SELECT set_config('role', $1, true), set_config('search_path', $2, true)",
        platform.names.role,
        quote_ident(platform.names.schema),
    )


# [low, high) of the strings starting with lower($n), in the byte order of the
# pattern operators (UTF-8 keeps code point order): high is low with its last
# character bumped by one. Computed by Postgres, so that q is lower-cased by the
# same lower() as the index expression, whatever the database's locale.
_LOW = "lower({p})"
_HIGH = "(left(lower({p}), -1) || chr(ascii(right(lower({p}), 1)) + 1))"
# The characters no bump can follow (U+D7FF + 1 is a surrogate; U+10FFFF is the
# last): a q ending in either is refused (422) by the list view.
UNBUMPABLE = frozenset({"\ud7ff", "\U0010ffff"})


async def list_apps(
    conn: asyncpg.Connection,
    *,
    q: str | None,
    status: str | None,
    after: str | None,
    limit: int,
) -> list[AppRecord]:
    """One page of apps in app_id order (keyset on app_id), ONE query (:func:`list_query`)."""
    sql, args = list_query(q=q, status=status, after=after, limit=limit)
    if q is not None:
        # A generic plan cannot see how narrow the prefix range is and walks the
        # whole app_id index in order instead (measured: 10,276 rows filtered
        # at 10,000 apps); the value's own plan reads the two ranges only.
        await conn.execute("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
    return [record_from_row(r) for r in await conn.fetch(sql, *args)]


def list_query(
    *, q: str | None, status: str | None, after: str | None, limit: int
) -> tuple[str, list[Any]]:
    """The SQL and arguments of one page of apps.

    ``q`` is a prefix of the app_id or of the lower-cased display name: two btree
    ranges on the text_pattern_ops indexes of sql/control/0004_platform.sql
    (a BitmapOr), written with the pattern operators (~>=~, ~<~), not LIKE, so
    that ``_`` and ``%`` in q are text. Without q: the app_id index in order.
    Reserved ids (the control plane itself) are never listed.
    """
    where = ["app_id <> ALL($1::text[])"]
    args: list[Any] = [_RESERVED]
    if status is None:
        where.append("status <> 'deleted'")
    elif status != "all":
        args.append(status)
        where.append(f"status = ${len(args)}")
    if q is not None:
        args.append(q)
        lo, hi = _LOW.format(p=f"${len(args)}::text"), _HIGH.format(p=f"${len(args)}::text")
        where.append(
            f"((app_id ~>=~ {lo} AND app_id ~<~ {hi})"
            f" OR (lower(display_name) ~>=~ {lo} AND lower(display_name) ~<~ {hi}))"
        )
    if after is not None:
        args.append(after)
        where.append(f"app_id ~>~ ${len(args)}")
    args.append(limit)
    sql = (
        f"SELECT {REGISTRY_COLUMNS} FROM oneauth.apps WHERE {' AND '.join(where)}"
        f" ORDER BY app_id USING ~<~ LIMIT ${len(args)}"
    )
    return sql, args


async def get_app(conn: asyncpg.Connection, app_id: str) -> AppRecord | None:
    """The registry row, None for an unknown or reserved id (the control plane is not
    one of the apps the platform API manages)."""
    if app_id in RESERVED_APP_IDS:
        return None
    row = await conn.fetchrow(
        f"SELECT {REGISTRY_COLUMNS} FROM oneauth.apps WHERE app_id = $1", app_id
    )
    return None if row is None else record_from_row(row)


async def enqueue(
    conn: asyncpg.Connection,
    *,
    kind: str,
    app_id: str,
    params: dict[str, Any],
    client_id: str,
    request_id: str | None,
) -> asyncpg.Record:
    """Queue a job (its insert NOTIFYs the runners); the new row."""
    row = await conn.fetchrow(
        "INSERT INTO oneauth.platform_jobs (kind, app_id, params, actor_client_id, request_id)"
        f" VALUES ($1, $2, $3::jsonb, $4, $5) RETURNING {JOB_COLUMNS}",
        kind,
        app_id,
        json.dumps(params),
        client_id,
        request_id,
    )
    assert row is not None
    return row


async def get_job(conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"SELECT {JOB_COLUMNS} FROM oneauth.platform_jobs WHERE id = $1", job_id
    )
    return row


async def list_jobs(
    conn: asyncpg.Connection,
    *,
    app_id: str | None,
    status: str | None,
    after: tuple[Any, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first, keyset on (created_at, id)."""
    where = ["true"]
    args: list[Any] = []
    if app_id is not None:
        args.append(app_id)
        where.append(f"app_id = ${len(args)}")
    if status is not None:
        args.append(status)
        where.append(f"status = ${len(args)}")
    if after is not None:
        args.extend(after)
        where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    return list(
        await conn.fetch(
            f"SELECT {JOB_COLUMNS} FROM oneauth.platform_jobs WHERE {' AND '.join(where)}"
            f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
            *args,
        )
    )


async def job_status(conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID) -> str | None:
    status: str | None = await conn.fetchval(
        "SELECT status FROM oneauth.platform_jobs WHERE id = $1", job_id
    )
    return status


async def get_settings_job(
    conn: asyncpg.Connection, job_id: uuid.UUID, app_id: str
) -> asyncpg.Record | None:
    """A configure job an app's own admin API queued for ``app_id`` (params.app_audit);
    None for any other job, so an app's admin sees no other app's jobs."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {JOB_COLUMNS} FROM oneauth.platform_jobs WHERE id = $1 AND app_id = $2"
        " AND kind = 'configure' AND params ? 'app_audit'",
        job_id,
        app_id,
    )
    return row
