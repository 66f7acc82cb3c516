"""The service shell: app gate, error format, probes, request ids and logs."""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
from collections.abc import Callable

import httpx
import pytest
import structlog

from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.db import ops
from oneauth.db.bootstrap import bootstrap
from oneauth.localpg import LocalPostgres, LocalPostgresError, find_bindir, scratch_dir
from oneauth.services import Services
from oneauth.settings import Settings


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:oneauth:error:{code}"
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body)


async def test_known_app_answers(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision(name="Shop")
    response = await client.get(f"/apps/{app.app_id}/v1/app")
    assert response.status_code == 200
    body = response.json()
    issuer = f"http://testserver/apps/{app.app_id}"
    assert body["app_id"] == app.app_id
    assert body["display_name"] == "Shop"
    assert body["issuer"] == issuer
    assert body["audience"] == f"{issuer}/api"
    assert body["default_client_id"].startswith("cl_")


@pytest.mark.parametrize("app_id", ["no-such-app", "APP", "a;drop", "x" * 200, "%2e%2e"])
async def test_unknown_or_invalid_app_is_404(client: httpx.AsyncClient, app_id: str) -> None:
    assert_problem(await client.get(f"/apps/{app_id}/v1/app"), 404, "app_not_found")


async def test_suspended_and_deleted_apps_are_404_without_waiting_for_ttl(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    suspended, deleted = provision(), provision()
    for app in (suspended, deleted):
        assert (await client.get(f"/apps/{app.app_id}/v1/app")).status_code == 200  # cached now
    with ops.connect(settings.operator_url) as conn:
        lifecycle.set_status(conn, suspended.app_id, "suspended")
        lifecycle.delete(conn, deleted.app_id)
    # The registry's NOTIFY drops the cached entries well before the 5 s TTL.
    for app in (suspended, deleted):
        for _ in range(40):
            response = await client.get(f"/apps/{app.app_id}/v1/app")
            if response.status_code == 404:
                break
            await asyncio.sleep(0.05)
        assert_problem(response, 404, "app_not_found")
    with ops.connect(settings.operator_url) as conn:
        lifecycle.set_status(conn, suspended.app_id, "active")
    for _ in range(40):
        if (await client.get(f"/apps/{suspended.app_id}/v1/app")).status_code == 200:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("resumed app did not come back")


async def test_unknown_route_and_method_use_the_error_format(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    assert_problem(await client.get("/nope"), 404, "not_found")
    assert_problem(await client.get(f"/apps/{app.app_id}/v1/nope"), 404, "not_found")
    assert_problem(await client.post(f"/apps/{app.app_id}/v1/app"), 405, "method_not_allowed")


async def test_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


async def test_a_started_service_keeps_its_start_up_objects_out_of_full_collections(
    client: httpx.AsyncClient,
) -> None:
    # The lifespan froze them (oneauth.asgi._freeze_startup_objects): a full pass of
    # the garbage collector then walks only what came later, not ~100,000 objects.
    assert (await client.get("/healthz")).status_code == 200
    assert gc.get_freeze_count() > 10_000


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz", headers={"x-request-id": "abc-123"})).headers[
        "x-request-id"
    ] == "abc-123"
    made = (await client.get("/healthz", headers={"x-request-id": "bad id <script>"})).headers[
        "x-request-id"
    ]
    assert made != "bad id"
    assert len(made) == 32


async def test_one_log_line_per_request_with_ids_and_no_query_string(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        await client.get(
            f"/apps/{app.app_id}/v1/app?code=SECRET-CODE&token=SECRET-TOKEN",
            headers={"x-request-id": "req-1", "authorization": "Bearer SECRET-BEARER"},
        )
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "req-1"
    assert line["app_id"] == app.app_id
    assert line["status"] == 200
    assert "SECRET" not in json.dumps(logs)


def test_json_log_rendering_redacts_secret_keys(capsys: pytest.CaptureFixture[str]) -> None:
    from oneauth import logs

    logs.configure("json", "info")
    try:
        structlog.get_logger("t").info("login_failed", password="hunter2", email_hash="x")
    finally:
        structlog.reset_defaults()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["password"] == "[redacted]"
    assert line["event"] == "login_failed"
    assert "hunter2" not in json.dumps(line)


def _have_pg_binaries() -> bool:
    try:
        find_bindir()
    except LocalPostgresError:
        return False
    return True


@pytest.mark.skipif(not _have_pg_binaries(), reason="needs Postgres server binaries to stop/start")
async def test_readyz_follows_the_database() -> None:
    root = scratch_dir()
    cluster = LocalPostgres(root / "data", fast=True)
    cluster.start()
    try:
        made = bootstrap(
            cluster.admin_dsn(),
            database="oneauth",
            operator_role="oneauth",
            operator_password="pw-readyz-op",
            service_role="oneauth_service",
            service_password="pw-readyz",
        )
        dsn = made.operator_dsn
        migrate_all(dsn)
        settings = Settings(
            env="test",
            database_url=made.service_dsn,
            operator_database_url=dsn,
            public_url="http://testserver",
            pool_min_size=1,
            pool_max_size=2,
        )
        with ops.connect(dsn) as conn:
            lifecycle.provision(conn, settings, "ready-app", "Ready")
        app = create_app(settings, configure_logging=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                assert (await c.get("/readyz")).status_code == 200
                await asyncio.to_thread(cluster.stop)
                assert_problem(await c.get("/readyz"), 503, "not_ready")
                services: Services = app.state.services
                services.registry.invalidate()
                # App traffic fails closed with 503, never a made-up answer.
                assert_problem(await c.get("/apps/ready-app/v1/app"), 503, "service_unavailable")
                await asyncio.to_thread(cluster.start)
                for _ in range(100):
                    if (await c.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("/readyz did not recover after the database came back")
                assert (await c.get("/apps/ready-app/v1/app")).status_code == 200
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def test_service_refuses_a_superuser_login_role(pg_admin_dsn: str) -> None:
    from oneauth.db.roles import UnsafeRole, check_operator_role

    with ops.connect(pg_admin_dsn) as conn, pytest.raises(UnsafeRole, match="superuser"):
        check_operator_role(conn)
