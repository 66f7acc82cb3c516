"""``GET /metrics`` (issue 11): Prometheus text format, route templates, no app label.

Counters are process-wide and the session's other tests move them too, so each
test reads a series before and after what it does and checks the difference.
The multiprocess test runs ``oneauth serve --workers 2`` as a real process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from apiclient import confidential_client, login, signup
from oneauth import metrics
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.apps.registry import Registry
from oneauth.asgi import create_app
from oneauth.db import ops
from oneauth.db.pool import AppPools, create_pool
from oneauth.localpg import free_port, scratch_dir
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services
from oneauth.settings import Settings

TOKEN_ROUTE = "/apps/{app_id}/oauth/token"
FAMILIES = (
    "oneauth_http_requests",
    "oneauth_http_request_duration_seconds",
    "oneauth_token_grants",
    "oneauth_logins",
    "oneauth_throttle_hits",
    "oneauth_registry_lookups",
    "oneauth_pool_wait_seconds",
    "oneauth_outbox_unswept_apps",
    "oneauth_outbox_retry_apps",
    "oneauth_outbox_lag_seconds",
)


def series(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return series(text).get((name, frozenset(labels.items())), 0.0)


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


async def test_metrics_answers_text_format_with_every_family(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    await client.get(f"/apps/{app.app_id}/v1/app")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert set(FAMILIES) <= names
    # Counts only: not an app id, even of the app just served.
    assert app.app_id not in response.text


async def test_token_requests_of_two_apps_land_on_one_templated_series(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    apps = [provision(), provision()]
    creds = [confidential_client(settings, a) for a in apps]
    before = await scrape(client)
    for app, (cid, secret) in zip(apps, creds, strict=True):
        ok = await client.post(
            f"/apps/{app.app_id}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(cid, secret),
        )
        assert ok.status_code == 200, ok.text
    bad = await client.post(
        f"/apps/{apps[0].app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds[0][0], "wrong"),
    )
    assert bad.status_code == 401
    odd = await client.post(f"/apps/{apps[0].app_id}/oauth/token", data={"grant_type": "x-y"})
    assert odd.status_code == 400
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok_labels = {"route": TOKEN_ROUTE, "method": "POST", "status": "200"}
    assert delta("oneauth_http_requests_total", **ok_labels) == 2
    assert delta("oneauth_http_request_duration_seconds_count", **ok_labels) == 2
    assert delta("oneauth_http_requests_total", route=TOKEN_ROUTE, method="POST", status="401") == 1
    grants = "oneauth_token_grants_total"
    assert delta(grants, grant_type="client_credentials", outcome="success") == 2
    assert delta(grants, grant_type="client_credentials", outcome="invalid_client") == 1
    # A made-up grant type is not a label value of its own.
    assert delta(grants, grant_type="other", outcome="unsupported_grant_type") == 1
    for app in apps:
        assert app.app_id not in after
    assert "x-y" not in after


async def test_unknown_paths_collapse_to_one_label(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    before = await scrape(client)
    for path in ("/no/such/path", "/nope-2", f"/apps/{app.app_id}/v1/nothing-here"):
        assert (await client.get(path)).status_code == 404
    after = await scrape(client)
    labels = {"route": metrics.UNMATCHED, "method": "GET", "status": "404"}
    assert (
        value(after, "oneauth_http_requests_total", **labels)
        - value(before, "oneauth_http_requests_total", **labels)
        == 3
    )
    assert "nothing-here" not in after
    assert "/no/such/path" not in after


async def test_made_up_methods_share_one_label(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    before = await scrape(client)
    for method in ("BREW", "XYZZY"):
        response = await client.request(method, f"/apps/{app.app_id}/v1/app")
        assert response.status_code == 405
    after = await scrape(client)
    labels = {"route": "/apps/{app_id}/v1/app", "method": "other", "status": "405"}
    name = "oneauth_http_requests_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 2
    assert "BREW" not in after


def test_route_templates_name_the_app_part() -> None:
    templates = metrics.RouteTemplates(create_app(Settings(env="test")).routes)
    assert templates.template("/apps/shop/oauth/token") == TOKEN_ROUTE
    assert templates.template("/apps/other-app/v1/me") == "/apps/{app_id}/v1/me"
    assert templates.template("/metrics") == "/metrics"
    assert templates.template("/apps/shop/") == metrics.UNMATCHED
    assert templates.template("/apps/shop/oauth/token/x") == metrics.UNMATCHED
    well_known = "/.well-known/oauth-authorization-server/apps/shop"
    assert templates.template(well_known) == "/.well-known/oauth-authorization-server/apps/{app_id}"


async def test_login_outcomes_and_throttle_hits_are_counted(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    await signup(client, app.app_id, "counted@example.com")
    before = await scrape(client)
    assert (await login(client, app.app_id, "counted@example.com")).status_code == 200
    statuses = []
    for n in range(15):
        r = await login(client, app.app_id, "counted@example.com", f"wrong guess {n}")
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    after = await scrape(client)
    failures = statuses.count(401)
    assert failures >= 1
    assert statuses[-1] == 429

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("oneauth_logins_total", outcome="success") == 1
    assert delta("oneauth_logins_total", outcome="failure") == failures
    assert delta("oneauth_logins_total", outcome="throttled") == 1
    assert delta("oneauth_throttle_hits_total", kind="login") == 1
    assert "counted@example.com" not in after


async def test_registry_hits_and_misses(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    registry = Registry(services.pool, ttl=60)
    miss, hit = metrics.REGISTRY_MISS, metrics.REGISTRY_HIT
    misses, hits = miss._value.get(), hit._value.get()
    assert await registry.get(app.app_id) is not None
    assert (miss._value.get() - misses, hit._value.get() - hits) == (1, 0)
    assert await registry.get(app.app_id) is not None
    assert (miss._value.get() - misses, hit._value.get() - hits) == (1, 1)
    registry.invalidate(app.app_id)
    await registry.get(app.app_id)
    assert (miss._value.get() - misses, hit._value.get() - hits) == (2, 1)


async def test_a_unit_that_queues_for_a_connection_is_timed(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    pool = await create_pool(settings, min_size=1, max_size=1)
    pools = AppPools([pool])
    try:
        before = await scrape(client)
        held_pool, held = await pools.acquire("t-wait", max_apps=256)
        waiter = asyncio.create_task(pools.acquire("t-wait", max_apps=256))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        await pools.release(held_pool, held)
        got_pool, got = await asyncio.wait_for(waiter, 10)
        await pools.release(got_pool, got)
        after = await scrape(client)
    finally:
        await pools.close()
    count = "oneauth_pool_wait_seconds_count"
    total = "oneauth_pool_wait_seconds_sum"
    assert value(after, count) - value(before, count) == 1
    assert value(after, total) - value(before, total) >= 0.09


async def test_outbox_gauges_follow_queued_mail_without_entering_schemas(
    make_database: Callable[[str], object],
) -> None:
    """A database of its own: the gauges are totals over every app."""
    db = make_database("metrics")
    migrate_all(db.dsn)  # type: ignore[attr-defined]
    settings: Settings = db.settings(pool_min_size=1, pool_max_size=2)  # type: ignore[attr-defined]
    with ops.connect(settings.operator_url) as conn:
        app = lifecycle.provision(conn, settings, "mailer", "Mailer").app
    service = create_app(settings, configure_logging=False)
    async with service.router.lifespan_context(service):
        services: Services = service.state.services
        worker = services.delivery
        assert worker is not None
        mailbox = worker.backend
        assert isinstance(mailbox, MemoryBackend)
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

            async def figures() -> tuple[float, float, float]:
                gauges = metrics.OutboxGauges()  # a fresh one: no cached figures
                await gauges.refresh(services.pool)
                assert gauges._values is not None
                return gauges._values

            async def until(
                wanted: Callable[[tuple[float, float, float]], bool], *, sweep: bool = False
            ) -> None:
                # An idle backend reports its write counts within about 10 s.
                deadline = time.monotonic() + 40
                while True:
                    if sweep:
                        await worker.sweep()
                    if wanted(got := await figures()):
                        return
                    assert time.monotonic() < deadline, got
                    await asyncio.sleep(0.5)

            assert await figures() == (0.0, 0.0, 0.0)
            await signup(http, app.app_id, "outbox@example.com")
            reset = await http.post(
                f"/apps/{app.app_id}/v1/password/reset/request",
                json={"email": "outbox@example.com"},
            )
            assert reset.status_code == 202, reset.text
            await until(lambda f: f[0] == 1)
            text = await scrape(http)
            assert value(text, "oneauth_outbox_unswept_apps") in (0.0, 1.0)  # cached up to 10 s
            # A sweep delivers; one after the delivery's writes are counted
            # records the outbox at rest.
            await until(lambda f: f == (0.0, 0.0, 0.0), sweep=True)
            assert mailbox.to("outbox@example.com")


def _serve_env(settings: Settings, port: int, metrics_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONEAUTH_")}
    clean.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {
        **clean,
        "ONEAUTH_ENV": "test",
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ONEAUTH_PORT": str(port),
        "ONEAUTH_LOG_FORMAT": "json",
        "ONEAUTH_POOL_MAX_SIZE": "2",
        "ONEAUTH_POOL_MIN_SIZE": "1",
        "ONEAUTH_METRICS_DIR": str(metrics_dir),
    }


def _served_by(metrics_dir: Path, labels: dict[str, str]) -> dict[str, float]:
    """Each worker's own count of one request series, read from its file."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
        for key, count, _, _ in values:
            _family, sample, sample_labels, _ = json.loads(key)
            if sample == "oneauth_http_requests_total" and sample_labels == labels and count:
                counts[path.name] = count
    return counts


def test_two_workers_report_one_total(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    work = scratch_dir("oneauth-metrics-test-")
    metrics_dir = work / "metrics"
    metrics_dir.mkdir()
    # Left by an earlier run: counted again (or unreadable) unless emptied at start.
    stale = metrics_dir / "counter_999999.db"
    stale.write_bytes(b"not a metrics file")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "oneauth.cli.main", "serve", "--workers", "2"],
        env=_serve_env(settings, port, metrics_dir),
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ready = 0
        while time.monotonic() < deadline and server.poll() is None and ready < 5:
            try:  # both workers up: several answers in a row on fresh connections
                ok = httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                ready = ready + 1 if ok else 0
            except httpx.HTTPError:
                ready = 0
            time.sleep(0.2)
        if ready < 5:
            server.kill()
            _, err = server.communicate(timeout=10)
            pytest.fail(f"the server never answered; exit {server.returncode}:\n{err[-3000:]}")
        assert not stale.exists()
        labels = {"route": "/apps/{app_id}/v1/app", "method": "GET", "status": "200"}
        url = f"{base}/apps/{app.app_id}/v1/app"
        sent = 0
        # Concurrent fresh connections until both workers have served some (bounded):
        # only then does one total from either worker prove the files are summed.
        with ThreadPoolExecutor(max_workers=8) as pool:
            while len(_served_by(metrics_dir, labels)) < 2 and sent < 240:
                codes = list(pool.map(lambda _: httpx.get(url, timeout=5).status_code, range(24)))
                assert codes == [200] * 24
                sent += 24
        per_worker = _served_by(metrics_dir, labels)
        assert len(per_worker) >= 2, per_worker
        assert sum(per_worker.values()) == sent
        for _ in range(6):  # whichever worker answers the scrape, the same total
            text = httpx.get(f"{base}/metrics", timeout=5).text
            assert value(text, "oneauth_http_requests_total", **labels) == sent
            assert value(text, "oneauth_http_request_duration_seconds_count", **labels) == sent
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


async def test_metrics_off_serves_no_endpoint(settings: Settings) -> None:
    service = create_app(replace(settings, metrics=False), configure_logging=False)
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/metrics")).status_code == 404


def test_the_metrics_setting_reads_on_and_off() -> None:
    assert Settings.from_env({"ONEAUTH_METRICS": "off"}).metrics is False
    assert Settings.from_env({"ONEAUTH_METRICS": "on"}).metrics is True
    assert Settings.from_env({}).metrics is True
    with pytest.raises(ValueError, match="ONEAUTH_METRICS"):
        Settings.from_env({"ONEAUTH_METRICS": "maybe"})


def test_serve_gives_several_workers_a_fresh_metrics_directory(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oneauth.cli.serve import MULTIPROC_ENV, metrics_dir

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with metrics_dir(settings, 1) as path:
        assert path is None  # one worker keeps its figures in memory
        assert MULTIPROC_ENV not in os.environ
    with metrics_dir(settings, 2) as path:
        assert path is not None
        assert os.environ[MULTIPROC_ENV] == path
        assert os.listdir(path) == []
        Path(path, "counter_1.db").write_bytes(b"")
    assert not Path(path).exists()  # a directory of its own: removed at exit
    assert MULTIPROC_ENV not in os.environ
    with metrics_dir(replace(settings, metrics=False), 4) as path:
        assert path is None
