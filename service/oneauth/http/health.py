"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from oneauth.db import templates
from oneauth.http.problems import DB_UNAVAILABLE, problem_response
from oneauth.services import Services


async def healthz(request: Request) -> Response:
    """The process is up; says nothing about its dependencies."""
    return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})


async def readyz(request: Request) -> Response:
    """Ready when the database answers and every schema is at the current migration."""
    services = Services.of(request)
    request_id = request.scope.get("state", {}).get("request_id")
    control_latest = templates.latest_version("control")
    app_latest = templates.latest_version("app")
    try:
        async with asyncio.timeout(2):
            row = await services.pool.fetchrow(
                "SELECT (SELECT count(*) FROM oneauth.schema_migrations) AS control,"
                " (SELECT count(*) FROM oneauth.apps"
                "   WHERE status <> 'deleted' AND schema_version <> $1) AS behind",
                app_latest,
            )
    except DB_UNAVAILABLE:
        return problem_response(
            503,
            "not_ready",
            "Not ready",
            "The database is unreachable",
            request_id,
            {"retry-after": "1"},
        )
    assert row is not None
    if row["control"] != control_latest or row["behind"]:
        return problem_response(
            503,
            "not_ready",
            "Not ready",
            "Schemas are not at the current migration; run `oneauth migrate`",
            request_id,
            extra={"control_version": row["control"], "apps_behind": row["behind"]},
        )
    return JSONResponse(
        {"status": "ready", "control_version": control_latest, "app_version": app_latest},
        headers={"cache-control": "no-store"},
    )
