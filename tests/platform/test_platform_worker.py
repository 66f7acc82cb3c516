"""The platform job runner on its own: the CLI, SKIP LOCKED, refusals (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys

import platformkit
from conftest import new_app_id
from oneauth.apps import lifecycle
from oneauth.db import ops
from oneauth.platform import runner
from oneauth.settings import Settings

platform_init = platformkit.platform_init  # the fixture


def _queue(conn: lifecycle.Conn, kind: str, app_id: str, params: str = "{}") -> object:
    row = conn.execute(
        "INSERT INTO oneauth.platform_jobs (kind, app_id, params, actor_client_id)"
        " VALUES (%s, %s, %s::jsonb, 'cl_worker-test') RETURNING id",
        (kind, app_id, params),
    ).fetchone()
    assert row is not None
    return row[0]


def _job(conn: lifecycle.Conn, job_id: object) -> tuple[str, dict[str, object]]:
    row = conn.execute(
        "SELECT status, result FROM oneauth.platform_jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_cli_worker_once_runs_the_queue(platform_init: object, settings: Settings) -> None:
    app_id = new_app_id("pwork")
    with ops.connect(settings.operator_url) as conn:
        job = _queue(conn, "provision", app_id, '{"display_name": "Worker Shop"}')
    env = {
        **os.environ,
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_PUBLIC_URL": settings.public_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", "platform", "worker", "--once"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with ops.connect(settings.operator_url) as conn:
        status, result = _job(conn, job)
        app = lifecycle.get(conn, app_id)
    assert status == "succeeded", result
    assert app is not None
    assert app.display_name == "Worker Shop"
    assert app.schema_version == lifecycle.latest_app_version()


def test_a_claimed_job_is_skipped_not_waited_for(platform_init: object, settings: Settings) -> None:
    """FOR UPDATE SKIP LOCKED: a job another runner holds is not taken twice; if that
    runner dies (its transaction rolls back), the job is still queued for the next."""
    app_id = new_app_id("pskip")
    with ops.connect(settings.operator_url) as holder, ops.connect(settings.operator_url) as other:
        job = _queue(holder, "provision", app_id, '{"display_name": "Skipped"}')
        with holder.transaction():
            holder.execute("SELECT 1 FROM oneauth.platform_jobs WHERE id = %s FOR UPDATE", (job,))
            runner.drain(other, settings)  # must not block on the held row
            assert _job(other, job)[0] == "queued"
            assert lifecycle.get(other, app_id) is None
        # The holder ended without finishing it (it committed nothing about the job):
        assert runner.run_one(other, settings) is not None
        status, _ = _job(other, job)
        assert status == "succeeded"


def test_refused_jobs_fail_cleanly_and_change_nothing(
    platform_init: object, settings: Settings
) -> None:
    app_id = new_app_id("prefuse")
    with ops.connect(settings.operator_url) as conn:
        cases = {
            "missing": _queue(conn, "suspend", app_id),
            "reserved": _queue(conn, "provision", "admin", '{"display_name": "Admin"}'),
            "platform": _queue(conn, "delete", "platform"),
            "bad setting": _queue(
                conn, "provision", app_id, '{"display_name": "X", "settings": {"nope": 1}}'
            ),
        }
        runner.drain(conn, settings)
        outcomes = {name: _job(conn, job) for name, job in cases.items()}
        assert lifecycle.get(conn, app_id) is None
        platform = lifecycle.get(conn, "platform")
    assert platform is not None
    assert platform.status == "active"
    codes = {name: result["error"]["code"] for name, (_, result) in outcomes.items()}  # type: ignore[index]
    assert codes == {
        "missing": "app_not_found",
        "reserved": "invalid_request",
        "platform": "app_not_found",
        "bad setting": "invalid_request",
    }
    assert {status for status, _ in outcomes.values()} == {"failed"}


async def test_the_service_runs_a_runner_when_asked(
    platform_init: object, settings: Settings
) -> None:
    """ONEAUTH_PLATFORM_WORKER=true (make run): the lifespan starts and stops a runner."""
    from dataclasses import replace

    import httpx

    from admin._support import bearer
    from oneauth.asgi import create_app
    from platformkit import platform_client, platform_token

    app = create_app(
        replace(settings, platform_worker=True, pool_max_size=4), configure_logging=False
    )
    cid, secret = platform_client(settings, ["platform:apps:write"])
    app_id = new_app_id("pinproc")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            token = await platform_token(http, cid, secret)
            r = await http.post(
                "/admin/v1/apps?wait=10",
                json={"app_id": app_id, "display_name": "In process"},
                headers=bearer(token),
            )
            assert r.status_code == 202, r.text
            assert r.json()["status"] == "succeeded", r.json()
            doc = await http.get(f"/apps/{app_id}/.well-known/openid-configuration")
            assert doc.status_code == 200
