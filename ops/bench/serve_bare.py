"""The bare limit servers: ``python -m ops.bench.serve_bare {json|pk} PORT WORKERS``.

uvicorn options mirror ``oneauth.cli.serve.serve`` (no access log, no server
header, no proxy headers, auto loop/http = uvloop/httptools), so the only
difference to the service is the application.

* ``json``: one Starlette route answering a small JSON object: the ceiling of
  uvicorn + Starlette on this machine;
* ``pk``: the same plus one asyncpg primary-key lookup per request from a
  pool sized like the service's: the ceiling of "one query per request".
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from collections.abc import AsyncIterator

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PK_ROWS = 10_000
PK_TABLE = "bench_limits.pk"


async def ready(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def hello(request: Request) -> Response:
    return JSONResponse({"status": "ok", "app_id": "bench", "issuer": "http://127.0.0.1/x"})


def json_app() -> Starlette:
    return Starlette(routes=[Route("/ready", ready), Route("/json", hello)])


def pk_app() -> Starlette:
    dsn = os.environ["BENCH_PK_DSN"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Same pool shape as oneauth.db.pool with the service's defaults.
        app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        try:
            yield
        finally:
            await app.state.pool.close()

    async def lookup(request: Request) -> Response:
        key = random.randint(1, PK_ROWS)
        row = await request.app.state.pool.fetchrow(
            f"SELECT id, name FROM {PK_TABLE} WHERE id = $1", key
        )
        return JSONResponse({"id": row["id"], "name": row["name"]})

    return Starlette(routes=[Route("/ready", ready), Route("/pk", lookup)], lifespan=lifespan)


def main() -> None:
    kind, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    factory = {"json": "json_app", "pk": "pk_app"}[kind]
    uvicorn.run(
        f"ops.bench.serve_bare:{factory}",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
