"""The admin console's app picker at 10,000 apps (issue 15): ``make bench-console``.

A throwaway cluster, ``oneauth platform init``, ``--apps`` apps in the registry,
one operator with an all-apps grant who signs in at the platform's hosted login
page (the real code + PKCE flow), opens a few apps (the "recent apps"), then:

* ``first_page``: ``GET /console/`` (the first page of 50 apps + recent apps);
* ``search``: ``GET /console/?q=<prefix>`` with a different prefix each time
  (app-id prefixes and display-name prefixes, some matching one app, some many);

each measured ``--requests`` times one after another against ``oneauth serve``
(uvicorn, ``--workers``); p50/p95/p99 in ms, written to ``--out`` (bench/console.json).
Target: p95 < 300 ms for both.

The apps: by default ``--apps`` REGISTRY rows inserted with one statement (the
picker reads the registry and the grants only, never an app's schema, so its
cost depends on the number of registry rows alone), plus two really provisioned
apps the operator opens. ``--provision`` provisions every app for real instead
(``ops.bench.fleet``, parallel processes: minutes at 10,000 on two cores); the
JSON says which was done (``apps_provisioned``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from ops.bench import cluster as bench_cluster
from ops.bench import fleet, servers
from ops.bench.stats import percentile

from oneauth.apps import lifecycle
from oneauth.db import ops
from oneauth.identity.passwords import PasswordHasher
from oneauth.localpg import free_port
from oneauth.platform import bootstrap, operators
from oneauth.settings import Settings

PASSWORD = "violet-Harbor-lantern-42"
TARGET_P95_MS = 300.0


def _registry_rows(conn: Any, count: int) -> None:
    """``count`` registry rows bench-00001..: what the picker reads (no schemas)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO oneauth.apps (app_id, display_name, schema_name, role_name)"
            " SELECT 'bench-' || lpad(n::text, 5, '0'),"
            "        'Bench app ' || n || ' '"
            "        || (ARRAY['alpha','beta','gamma','delta'])[1 + n %% 4],"
            "        'app_bench_' || lpad(n::text, 5, '0'),"
            "        'oneauth_bench_role_' || lpad(n::text, 5, '0')"
            " FROM generate_series(1, %s) AS n ON CONFLICT DO NOTHING",
            (count,),
        )


def _sign_in(http: httpx.Client, email: str) -> None:
    from html.parser import HTMLParser

    class Form(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.action = ""
            self.fields: dict[str, str] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "form" and not self.action:
                self.action = a.get("action") or ""
            if tag == "input" and a.get("name") and a.get("type") == "hidden":
                self.fields[str(a["name"])] = a.get("value") or ""

    response = http.get("/console/login")
    for _ in range(6):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            response = http.get(location)
            if urlsplit(location).path == "/console/callback":
                assert response.status_code == 302, response.text
                return
            continue
        assert response.status_code == 200, response.text
        page = Form()
        page.feed(response.text)
        response = http.post(
            page.action, data={**page.fields, "email": email, "password": PASSWORD}
        )
    raise RuntimeError("the console sign-in did not complete")


def _measure(http: httpx.Client, paths: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    for path in paths:
        t0 = time.perf_counter()
        response = http.get(path)
        latencies.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            errors += 1
    return {
        "requests": len(paths),
        "errors": errors,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.console",
        description="The console's app picker (first page, search) at 10,000 apps.",
    )
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300, help="per measurement")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--provision", action="store_true", help="provision every app for real")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    cl = bench_cluster.start(None, durable=False)
    try:
        port = free_port()
        settings = Settings(
            env="development",
            database_url=cl.dsn,
            public_url=f"http://127.0.0.1:{port}",
            master_key=cl.master_key,
        )
        started = time.perf_counter()
        with ops.connect(cl.dsn) as conn:
            bootstrap.init(conn, settings)
            opened = [
                lifecycle.provision(conn, settings, f"console-{i}", f"Console bench {i}").app
                for i in (1, 2)
            ]
        if args.provision:
            fleet.ensure(settings, args.apps, parallel=os.cpu_count() or 1, single_samples=0)
        else:
            with ops.connect(cl.dsn) as conn:
                _registry_rows(conn, args.apps)
        setup_seconds = time.perf_counter() - started
        email = f"bench-{secrets.token_hex(3)}@example.com"
        hasher = PasswordHasher(max_workers=1)
        try:
            with ops.connect(cl.dsn) as conn:
                operators.create_operator(conn, email, hasher.hash_sync(PASSWORD))
                operators.grant(conn, email, None, "admin")
        finally:
            hasher.close()
        with servers.start_service(
            dsn=cl.service_dsn, master_key=cl.master_key, workers=args.workers, port=port
        ):
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as http:
                _sign_in(http, email)
                for app in opened:
                    assert http.get(f"/console/apps/{app.app_id}").status_code == 200
                first = http.get("/console/")
                if first.status_code != 200 or "bench-00001" not in first.text:
                    raise RuntimeError(f"the picker did not answer: {first.text[:500]}")
                # warm-up (connections, template cache), not measured
                _measure(http, ["/console/"] * 10)
                pages = _measure(http, ["/console/"] * args.requests)
                prefixes = [f"bench-{n:05d}"[: 7 + n % 5] for n in range(1, args.requests + 1)]
                names = ["Bench app 77", "bench app 1", "Console", "BENCH APP 9999", "zzz"]
                queries = [
                    f"/console/?q={(prefixes + names)[i % (len(prefixes) + len(names))]}"
                    for i in range(args.requests)
                ]
                search = _measure(http, queries)
    finally:
        cl.close()
    body = {
        "apps": args.apps + len(opened),
        "apps_provisioned": args.apps + len(opened) if args.provision else len(opened),
        "registry_only_rows": 0 if args.provision else args.apps,
        "setup_seconds": round(setup_seconds, 1),
        "workers": args.workers,
        "page_size": 50,
        "first_page": pages,
        "search": search,
        "target_p95_ms": TARGET_P95_MS,
        "pass": pages["p95_ms"] < TARGET_P95_MS and search["p95_ms"] < TARGET_P95_MS,
    }
    print(json.dumps(body, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(body, indent=2) + "\n")
    return 0 if body["pass"] and not pages["errors"] and not search["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
