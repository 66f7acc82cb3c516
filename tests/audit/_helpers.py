"""Helpers of the audit chain tests: a sealer, rows, and a superuser connection."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.auditchain import checkpoints, repo
from oneauth.auditchain.chain import Report, genesis, link
from oneauth.auditchain.sealer import Sealer, SealerConfig
from oneauth.auditchain.verify import verify_chain
from oneauth.services import Services
from oneauth.settings import Settings


def make_sealer(services: Services, **config: Any) -> Sealer:
    return Sealer(
        services.settings,
        services.pool,
        services.registry,
        services.router,
        services.keys,
        services.box,
        SealerConfig(**config),
    )


async def write(services: Services, app: AppRecord, n: int, event: str = "test.event") -> None:
    async with services.router.enter(app) as conn:
        for i in range(n):
            await audit.record(
                conn,
                event,
                "success",
                audit.SYSTEM,
                actor_type="system",
                actor_id="tests",
                target_type="thing",
                target_id=f"t{i}",
                details={"i": i, "note": "é\u2603", "nested": {"b": 1, "a": [1.5, None]}},
            )


async def ids(services: Services, app: AppRecord, table: str = "audit_log") -> list[int]:
    column = "id" if table == "audit_log" else "audit_id"
    async with services.router.enter(app) as conn:
        return [int(r[0]) for r in await conn.fetch(f"SELECT {column} FROM {table} ORDER BY 1")]


async def stored_checkpoints(services: Services, app_id: str) -> list[dict[str, Any]]:
    async with services.pool.acquire() as conn:
        return [checkpoints.export_row(r) for r in await repo.checkpoints(conn, app_id)]


async def verify(services: Services, app: AppRecord, **kwargs: Any) -> Report:
    async def load() -> list[dict[str, Any]]:
        return await stored_checkpoints(services, app.app_id)

    async with services.router.enter(app) as conn:
        return await verify_chain(
            conn,
            app_id=app.app_id,
            load_checkpoints=load,
            box=services.box,
            **kwargs,
        )


@contextlib.contextmanager
def superuser(
    pg_admin_dsn: str, settings: Settings, app: AppRecord | None = None
) -> Iterator[psycopg.Connection[Any]]:
    """A superuser in the test database with triggers off (session_replication_role):
    the strongest database writer there is."""
    database = conninfo_to_dict(settings.database_url)["dbname"]
    with psycopg.connect(make_conninfo(pg_admin_dsn, dbname=database), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        if app is not None:
            conn.execute(f'SET search_path TO "{app.names.schema}"')
        yield conn


def rechain(conn: psycopg.Connection[Any], app: AppRecord) -> None:
    """Recompute the whole chain from the (tampered) log: a consistent rewrite."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
    for r in rows:
        r["details"] = json.dumps(r["details"])
    conn.execute("DELETE FROM audit_chain")
    for audit_id, prev, digest in link(genesis(app.app_id), rows):
        conn.execute(
            "INSERT INTO audit_chain (audit_id, prev_hash, row_hash) VALUES (%s, %s, %s)",
            (audit_id, prev, digest),
        )
