"""/readyz and per-app availability across migrations (issue 10 item 11).

Ready: database reachable, control schema at or above this release, app schemas
too except the ones reported. A schema ahead of the code is ready (migrate-first
rollout); an app that is behind (its migration failed) is listed in the detail
and the log and answers 503 alone; the control schema behind is not ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette

from conftest import ScratchDatabase
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.asgi import create_app
from oneauth.db import ops, templates

APPS = ("ready-a", "ready-b", "ready-c")
APP_LATEST = templates.latest_version("app")
CONTROL_LATEST = templates.latest_version("control")


@pytest.fixture(scope="module")
def fleet_database(make_database: Callable[[str], ScratchDatabase]) -> ScratchDatabase:
    db = make_database("ready")
    migrate_all(db.dsn)
    settings = db.settings()
    with ops.connect(db.dsn) as conn:
        for app_id in APPS:
            lifecycle.provision(conn, settings, app_id, app_id.title())
    return db


@pytest.fixture(scope="module")
def fleet_db(fleet_database: ScratchDatabase) -> str:
    """The operator's URL: the tests move schema versions as migrations would."""
    return fleet_database.dsn


@pytest.fixture(scope="module")
async def fleet(fleet_database: ScratchDatabase) -> AsyncIterator[Starlette]:
    settings = fleet_database.settings(pool_max_size=2)
    from oneauth.http.health import Readiness

    app = create_app(settings, configure_logging=False)
    app.state.readiness = Readiness(ttl=0)  # every probe reads the database here
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def http(fleet: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fleet)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@contextmanager
def app_versions(dsn: str, **versions: int) -> Iterator[None]:
    """Set apps' recorded schema versions (what migrate leaves), restore after."""
    with ops.connect(dsn) as conn:
        for app_id, version in versions.items():
            conn.execute(
                "UPDATE oneauth.apps SET schema_version = %s WHERE app_id = %s",
                (version, app_id.replace("_", "-")),
            )
    try:
        yield
    finally:
        with ops.connect(dsn) as conn:
            conn.execute("UPDATE oneauth.apps SET schema_version = %s", (APP_LATEST,))


async def _status_becomes(http: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    """The registry learns of the change through NOTIFY: wait for it (well within its TTL)."""
    for _ in range(50):
        response = await http.get(path)
        if response.status_code == status:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} stayed {response.status_code}, expected {status}")


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


async def test_a_schema_ahead_of_the_code_is_ready(http: httpx.AsyncClient, fleet_db: str) -> None:
    """A newer release migrated first: its ledger rows are unknown here, and that is fine."""
    with ops.connect(fleet_db) as conn, conn.transaction():
        ahead_a = lifecycle.names_of(conn, "ready-a")
        conn.execute(
            "INSERT INTO oneauth.schema_migrations (version, name, checksum)"
            " VALUES (%s, 'from_a_newer_release', 'f' || repeat('0', 63))",
            (CONTROL_LATEST + 1,),
        )
        with ops.app_context(conn, ahead_a):
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum)"
                " VALUES (%s, 'from_a_newer_release', 'f' || repeat('0', 63))",
                (APP_LATEST + 1,),
            )
    try:
        with app_versions(fleet_db, ready_a=APP_LATEST + 1):
            response = await http.get("/readyz")
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["status"] == "ready"
            assert body["control_version"] == CONTROL_LATEST + 1
            assert body["apps_behind"] == 0
            assert (await _status_becomes(http, "/apps/ready-a/v1/app", 200)).json()[
                "app_id"
            ] == "ready-a"
    finally:
        with ops.connect(fleet_db) as conn, conn.transaction():
            conn.execute(
                "DELETE FROM oneauth.schema_migrations WHERE version > %s", (CONTROL_LATEST,)
            )
            with ops.app_context(conn, ahead_a):
                conn.execute("DELETE FROM schema_migrations WHERE version > %s", (APP_LATEST,))


async def test_an_app_behind_answers_503_alone_and_is_reported(
    http: httpx.AsyncClient, fleet_db: str
) -> None:
    with app_versions(fleet_db, ready_b=APP_LATEST - 1), structlog.testing.capture_logs() as logs:
        refused = await _status_becomes(http, "/apps/ready-b/v1/app", 503)
        body = _problem(refused, 503, "app_unavailable")
        assert "ready-b" in body["detail"]
        assert refused.headers["retry-after"]
        # Every route of that app, OAuth included, fails closed the same way.
        token = await http.post(
            "/apps/ready-b/oauth/token", data={"grant_type": "client_credentials"}
        )
        _problem(token, 503, "app_unavailable")
        discovery = await http.get("/.well-known/oauth-authorization-server/apps/ready-b")
        _problem(discovery, 503, "app_unavailable")
        # The other apps serve, and the replica stays in the load balancer.
        for other in ("ready-a", "ready-c"):
            assert (await http.get(f"/apps/{other}/v1/app")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        detail = ready.json()
        assert detail["status"] == "ready"
        assert detail["apps_behind"] == 1
        assert detail["apps_behind_ids"] == ["ready-b"]
        assert detail["app_version_needed"] == APP_LATEST
    reported = [e for e in logs if e["event"] == "apps_behind"]
    assert reported
    assert reported[0]["app_ids"] == ["ready-b"]
    assert reported[0]["log_level"] == "warning"
    # Migrated again: it serves.
    assert (await _status_becomes(http, "/apps/ready-b/v1/app", 200)).status_code == 200
    assert (await http.get("/readyz")).json()["apps_behind"] == 0


async def test_the_control_schema_behind_is_not_ready(
    http: httpx.AsyncClient, fleet_db: str
) -> None:
    with ops.connect(fleet_db) as conn:
        row = conn.execute(
            "DELETE FROM oneauth.schema_migrations WHERE version = %s RETURNING name, checksum",
            (CONTROL_LATEST,),
        ).fetchone()
    assert row is not None
    try:
        body = _problem(await http.get("/readyz"), 503, "not_ready")
        assert body["control_version"] == CONTROL_LATEST - 1
        assert "control schema" in body["detail"]
    finally:
        with ops.connect(fleet_db) as conn:
            conn.execute(
                "INSERT INTO oneauth.schema_migrations (version, name, checksum)"
                " VALUES (%s, %s, %s)",
                (CONTROL_LATEST, row[0], row[1]),
            )
    assert (await http.get("/readyz")).status_code == 200


async def test_every_app_behind_is_not_ready(http: httpx.AsyncClient, fleet_db: str) -> None:
    """This release was deployed before its migrations ran: keep it out of rotation."""
    behind = {app_id.replace("-", "_"): APP_LATEST - 1 for app_id in APPS}
    with app_versions(fleet_db, **behind):
        body = _problem(await http.get("/readyz"), 503, "not_ready")
        assert body["apps_behind"] == len(APPS)
    assert (await http.get("/readyz")).status_code == 200


async def test_many_probes_at_once_share_one_query(fleet: Starlette) -> None:
    pool = fleet.state.services.pool
    calls = 0

    class CountingPool:
        async def fetchrow(self, *args: Any) -> Any:
            nonlocal calls
            calls += 1
            return await pool.fetchrow(*args)

        async def fetchval(self, *args: Any) -> Any:
            return await pool.fetchval(*args)  # the cheap reachability check

    from oneauth.http.health import Readiness

    readiness = Readiness(ttl=5.0)
    results = await asyncio.gather(
        *(readiness.fleet(CountingPool(), APP_LATEST) for _ in range(40))
    )
    assert calls == 1
    assert {r.apps for r in results} == {len(APPS)}
