"""Liveness and readiness probes.

Ready means: the database answers, the control schema is at or above what this
release needs, and the app schemas are too, except for apps that are reported.
A schema *ahead* of the code (a newer release migrated first) is ready: the old
replicas keep serving through a migrate-first rollout. An app whose schema is
behind (its migration failed) is listed in the detail and logged, and answers
503 alone (``Registry.require_active``); one bad tenant never takes the fleet
out of the load balancer. Only when *every* app is behind (this release was
deployed before its migrations ran) is the replica not ready.

One query over the registry, its answer cached for a second (a probe then only
checks that the database answers): cheap at 10,000 apps, and no probe ever
enters an app schema.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from oneauth.db import templates
from oneauth.http.contract import Operation, operation
from oneauth.http.problems import DB_UNAVAILABLE, problem_response
from oneauth.services import Services

log = structlog.get_logger("oneauth.health")

# Apps named in the detail at most; the count is always exact.
LISTED_APPS = 100

_QUERY = """
SELECT (SELECT max(version) FROM oneauth.schema_migrations) AS control,
       count(*) AS apps,
       count(*) FILTER (WHERE schema_version < $1) AS behind,
       (array_agg(app_id ORDER BY app_id) FILTER (WHERE schema_version < $1))[1:$2] AS behind_ids
FROM oneauth.apps WHERE status <> 'deleted'
"""


@dataclass(frozen=True, slots=True)
class Fleet:
    control_version: int
    apps: int
    behind: int
    behind_ids: tuple[str, ...]


class Readiness:
    """The fleet's migration state, read with one query and cached for ``ttl`` seconds."""

    def __init__(self, ttl: float = 1.0) -> None:
        self._ttl = ttl
        self._cached: tuple[float, Fleet] | None = None
        self._lock = asyncio.Lock()
        self._reported: tuple[int, tuple[str, ...]] = (0, ())

    async def fleet(self, pool: asyncpg.Pool, app_version: int) -> Fleet:
        async with self._lock:  # one query at a time, however many probes arrive
            now = time.monotonic()
            if self._cached is not None and self._cached[0] > now:
                # Still one round trip: readiness follows the database at once.
                async with asyncio.timeout(2):
                    await pool.fetchval("SELECT 1")
                return self._cached[1]
            async with asyncio.timeout(2):
                row = await pool.fetchrow(_QUERY, app_version, LISTED_APPS)
            assert row is not None
            fleet = Fleet(
                control_version=int(row["control"] or 0),
                apps=int(row["apps"]),
                behind=int(row["behind"]),
                behind_ids=tuple(row["behind_ids"] or ()),
            )
            self._cached = (now + self._ttl, fleet)
            self._report(fleet, app_version)
            return fleet

    def _report(self, fleet: Fleet, app_version: int) -> None:
        """Log when the set of apps that are behind changes (not on every probe)."""
        state = (fleet.behind, fleet.behind_ids)
        if state == self._reported:
            return
        self._reported = state
        if fleet.behind:
            log.warning(
                "apps_behind",
                count=fleet.behind,
                app_ids=list(fleet.behind_ids),
                app_version=app_version,
                hint="these apps answer 503 app_unavailable; run `oneauth migrate`",
            )
        else:
            log.info("apps_current", app_version=app_version)


class Liveness(msgspec.Struct):
    status: Literal["ok"]


class ReadinessReport(msgspec.Struct):
    """Ready; a 503 ``not_ready`` problem carries the same counts."""

    status: Literal["ready"]
    control_version: int
    control_version_needed: int
    app_version_needed: int
    apps: int
    apps_behind: int
    apps_behind_ids: list[str]


@operation(Operation("Liveness", responses={200: Liveness}, tags=("health",)))
async def healthz(request: Request) -> Response:
    """The process is up; says nothing about its dependencies."""
    return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})


@operation(
    Operation("Readiness", responses={200: ReadinessReport}, errors=(503,), tags=("health",))
)
async def readyz(request: Request) -> Response:
    """Ready when the database answers and the schemas are at or above this release."""
    services = Services.of(request)
    readiness = request.app.state.readiness
    assert isinstance(readiness, Readiness)
    request_id = request.scope.get("state", {}).get("request_id")
    control_needed = templates.latest_version("control")
    app_needed = services.registry.required_version

    def not_ready(detail: str, extra: dict[str, Any] | None = None) -> Response:
        headers = {"retry-after": "1"}
        return problem_response(503, "not_ready", "Not ready", detail, request_id, headers, extra)

    try:
        fleet = await readiness.fleet(services.pool, app_needed)
    except DB_UNAVAILABLE:
        return not_ready("The database is unreachable")
    except asyncpg.PostgresError as exc:  # e.g. no control schema at all
        log.warning("readiness_query_failed", error=type(exc).__name__)
        return not_ready("The control schema is missing; run `oneauth migrate`")
    body: dict[str, Any] = {
        "control_version": fleet.control_version,
        "control_version_needed": control_needed,
        "app_version_needed": app_needed,
        "apps": fleet.apps,
        "apps_behind": fleet.behind,
        "apps_behind_ids": list(fleet.behind_ids),
    }
    if fleet.control_version < control_needed:
        return not_ready("The control schema is behind this release; run `oneauth migrate`", body)
    if fleet.apps and fleet.behind == fleet.apps:
        return not_ready("Every app schema is behind this release; run `oneauth migrate`", body)
    return JSONResponse({"status": "ready", **body}, headers={"cache-control": "no-store"})
