"""Refresh with the audit chain's sealer on beside off (issue 15, A2).

    python -m ops.bench.audit_chain [--duration S] [--reps N] [--connections C] [--out F]

A throwaway Postgres (the harness's cluster), one app, the service under
uvicorn with one worker per core. ``--connections`` accounts sign up; each
concurrent client then keeps one refresh family going (every refresh writes
an audit row, ``token.refresh``) for ``--duration`` seconds, alternately with
the service started with ``ONEAUTH_AUDIT_SEALER=off`` and with
``ONEAUTH_AUDIT_SEALER=inprocess`` (every worker process runs a sealer, one
leads per app; ``--seal-interval`` seconds between rounds, 1 s by default,
harsher than the 5 s default). Target: "on" within 1.1x of "off" (rate and
p50). After each "on" run: how far the chain lagged (rows not yet sealed
when the load stopped) and how long the sealer took to catch up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from ops.bench import cluster as bench_cluster
from ops.bench import servers
from ops.bench.bank import PASSWORD
from ops.bench.stats import percentile

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.localpg import free_port
from oneauth.settings import Settings

APP_ID = "bench-audit"
MODES = ("off", "on")


@dataclass
class Result:
    mode: str
    refreshes: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    unsealed_at_stop: int | None = None
    catch_up_s: float | None = None


def _counts(conn: Any, app: AppRecord) -> tuple[int, int]:
    with conn.transaction(), ops.app_context(conn, app.names):
        row = conn.execute(
            "SELECT (SELECT count(*) FROM audit_log), (SELECT count(*) FROM audit_chain)"
        ).fetchone()
    return int(row[0]), int(row[1])


async def _families(base_url: str, n: int) -> tuple[str, list[str]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        r = await http.get(f"/apps/{APP_ID}/v1/app")
        r.raise_for_status()
        client_id = str(r.json()["default_client_id"])
        gate = asyncio.Semaphore(8)

        async def signup(i: int) -> str:
            async with gate:
                r = await http.post(
                    f"/apps/{APP_ID}/v1/signup",
                    json={"email": f"audit-{i}@bench.example", "password": PASSWORD},
                )
            r.raise_for_status()
            return str(r.json()["refresh_token"])

        return client_id, list(await asyncio.gather(*(signup(i) for i in range(n))))


async def _measure(
    base_url: str, client_id: str, tokens: list[str], mode: str, seconds: float
) -> Result:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=len(tokens) + 8)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        stop_at = time.monotonic() + seconds

        async def one(i: int) -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                data = {
                    "grant_type": "refresh_token",
                    "refresh_token": tokens[i],
                    "client_id": client_id,
                }
                t0 = time.perf_counter()
                r = await http.post(f"/apps/{APP_ID}/oauth/token", data=data)
                if r.status_code != 200:
                    errors += 1
                    return
                latencies.append((time.perf_counter() - t0) * 1000)
                tokens[i] = r.json()["refresh_token"]

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(len(tokens))))
    return Result(mode, len(latencies), errors, time.monotonic() - started, latencies)


def _summary(results: list[Result]) -> list[dict[str, Any]]:
    out = []
    for mode in MODES:
        runs = [r for r in results if r.mode == mode]
        merged = [x for r in runs for x in r.latencies_ms]
        rates = [r.refreshes / r.seconds if r.seconds else 0.0 for r in runs]
        row: dict[str, Any] = {
            "sealer": mode,
            "rate_median": statistics.median(rates),
            "rates": [round(x, 1) for x in rates],
            "errors": sum(r.errors for r in runs),
            "p50_ms": percentile(merged, 50) if merged else None,
            "p99_ms": percentile(merged, 99) if merged else None,
        }
        if mode == "on":
            row["unsealed_at_stop"] = [r.unsealed_at_stop for r in runs]
            row["catch_up_s"] = [r.catch_up_s for r in runs]
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.audit_chain",
        description="Refresh with the audit chain's sealer on beside off.",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--reps", type=int, default=2, help="measurements of each (alternating)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent families")
    parser.add_argument("--seal-interval", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    args = parser.parse_args(argv)

    cl = bench_cluster.start(None, durable=False)
    results: list[Result] = []
    try:
        port = free_port()
        settings = Settings(
            env="development",
            database_url=cl.dsn,
            public_url=f"http://127.0.0.1:{port}",
            master_key=cl.master_key,
        )
        base_url = f"http://127.0.0.1:{port}"
        with ops.connect(cl.dsn) as conn:
            app = lifecycle.provision(conn, settings, APP_ID, "Bench audit").app
            client_id = ""
            tokens: list[str] = []
            for rep in range(args.reps):
                for mode in MODES:  # alternating: drift hits both
                    extra = {
                        "ONEAUTH_AUDIT_SEALER": "inprocess" if mode == "on" else "off",
                        "ONEAUTH_AUDIT_SEAL_INTERVAL": str(args.seal_interval),
                        "ONEAUTH_EMAIL_WORKER": "off",
                    }
                    with servers.start_service(
                        dsn=cl.service_dsn,
                        master_key=cl.master_key,
                        workers=args.workers,
                        port=port,
                        **extra,
                    ):
                        if not tokens:
                            client_id, tokens = asyncio.run(_families(base_url, args.connections))
                        # Warm-up, discarded: every worker's caches and connections.
                        asyncio.run(_measure(base_url, client_id, tokens, mode, 1.0))
                        result = asyncio.run(
                            _measure(base_url, client_id, tokens, mode, args.duration)
                        )
                        if mode == "on":
                            logged, sealed = _counts(conn, app)
                            result.unsealed_at_stop = logged - sealed
                            started = time.monotonic()
                            while sealed < logged and time.monotonic() - started < 120:
                                time.sleep(0.2)
                                logged, sealed = _counts(conn, app)
                            result.catch_up_s = round(time.monotonic() - started, 2)
                    results.append(result)
                    print(
                        f"rep {rep + 1} sealer {mode}: {result.refreshes / result.seconds:.1f}"
                        f" refreshes/s, errors {result.errors}",
                        flush=True,
                    )
            logged, sealed = _counts(conn, app)
    finally:
        cl.close()
    summary = _summary(results)
    off = summary[0]
    for row in summary:
        row["p50_vs_off"] = row["p50_ms"] / off["p50_ms"] if off["p50_ms"] else None
        row["rate_vs_off"] = row["rate_median"] / off["rate_median"] if off["rate_median"] else None
        print(
            f"sealer {row['sealer']:>3}: {row['rate_median']:.1f} refreshes/s"
            f" (runs {row['rates']}),"
            f" p50 {row['p50_ms']:.1f} ms ({row['p50_vs_off']:.2f}x off),"
            f" p99 {row['p99_ms']:.1f} ms, errors {row['errors']}"
        )
    print(f"audit rows {logged}, sealed {sealed} (rows written while the sealer was off included)")
    if args.out:
        body = {
            "refresh": summary,
            "audit_rows": logged,
            "sealed_rows": sealed,
            "seal_interval_s": args.seal_interval,
            "workers": args.workers,
            "connections": args.connections,
            "duration_s": args.duration,
        }
        args.out.write_text(json.dumps(body, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
