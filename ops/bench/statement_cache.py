"""Refresh with asyncpg's statement cache on beside off (issue 16, N3).

    python -m ops.bench.statement_cache [--duration S] [--reps N] [--connections C] [--out F]

What turning the cache off costs, the setting PgBouncer < 1.21 in transaction
mode needs (``ONEAUTH_DATABASE_STATEMENT_CACHE_SIZE=0``): measured on direct
Postgres, so only the cache differs. A throwaway Postgres (the harness's
cluster), one app, the service under uvicorn with one worker per core.
``--connections`` accounts sign up; each concurrent client then keeps one
refresh family going for ``--duration`` seconds, alternately with the cache at
asyncpg's default (100 statements per connection) and at 0 (every query parsed
and planned again: asyncpg sends an unnamed statement each time).
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
from oneauth.db import ops
from oneauth.localpg import free_port
from oneauth.settings import Settings

APP_ID = "bench-stmtcache"
MODES = ("on", "off")
CACHE_SIZE = {"on": "100", "off": "0"}


@dataclass
class Result:
    mode: str
    refreshes: int
    errors: int
    seconds: float
    latencies_ms: list[float]


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
                    json={"email": f"stmt-{i}@bench.example", "password": PASSWORD},
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


async def _statements(dsn: str, app: Any, client_id: str, blocks: int) -> dict[str, Any]:
    """Three of a refresh's real reads, on one connection in the app's context, with the
    cache on and off in alternating blocks: the per-statement cost of parsing and
    planning again, with no HTTP, argon2 or client in the way (less noisy than a rate)."""
    import asyncpg

    from oneauth.oauth import clients as clients_repo
    from oneauth.sessions import repo as sessions_repo
    from oneauth.tokens import keystore

    queries: list[tuple[str, tuple[Any, ...]]] = [
        (clients_repo._LOAD, (client_id,)),
        (keystore._LOAD, ()),
        (sessions_repo._SEEN, (sessions_repo.hash_token("no-such-token"), client_id, 30.0)),
    ]
    per_mode: dict[str, list[float]] = {mode: [] for mode in MODES}
    rounds = 200
    for _ in range(blocks):
        for mode in MODES:
            conn = await asyncpg.connect(dsn, statement_cache_size=int(CACHE_SIZE[mode]))
            try:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT set_config('role', $1, true), set_config('search_path', $2, true)",
                        app.names.role,
                        app.names.schema,
                    )
                    for sql, args in queries:  # warm: catalog caches, first plan
                        await conn.fetch(sql, *args)
                    t0 = time.perf_counter()
                    for _ in range(rounds):
                        for sql, args in queries:
                            await conn.fetch(sql, *args)
                    elapsed = time.perf_counter() - t0
            finally:
                await conn.close()
            per_mode[mode].append(elapsed / (rounds * len(queries)) * 1e6)
    on, off = (statistics.median(per_mode[m]) for m in MODES)
    return {
        "queries": ["clients._LOAD", "keystore._LOAD", "sessions._SEEN"],
        "us_per_statement_on": round(on, 1),
        "us_per_statement_off": round(off, 1),
        "off_vs_on": round(off / on, 3),
        "blocks_us": {m: [round(x, 1) for x in v] for m, v in per_mode.items()},
    }


def _summary(results: list[Result]) -> list[dict[str, Any]]:
    out = []
    for mode in MODES:
        runs = [r for r in results if r.mode == mode]
        merged = [x for r in runs for x in r.latencies_ms]
        rates = [r.refreshes / r.seconds if r.seconds else 0.0 for r in runs]
        row: dict[str, Any] = {
            "statement_cache": mode,
            "statement_cache_size": int(CACHE_SIZE[mode]),
            "rate_median": statistics.median(rates),
            "rates": [round(x, 1) for x in rates],
            "errors": sum(r.errors for r in runs),
            "p50_ms": percentile(merged, 50) if merged else None,
            "p99_ms": percentile(merged, 99) if merged else None,
        }
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.statement_cache",
        description="Refresh with asyncpg's statement cache on beside off.",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--reps", type=int, default=2, help="measurements of each (alternating)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent families")
    parser.add_argument("--blocks", type=int, default=5, help="statement blocks per mode")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
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
            app = lifecycle.provision(conn, settings, APP_ID, "Bench statement cache").app
            client_id = ""
            tokens: list[str] = []
            for rep in range(args.reps):
                for mode in MODES:  # alternating: drift hits both
                    extra = {
                        "ONEAUTH_DATABASE_STATEMENT_CACHE_SIZE": CACHE_SIZE[mode],
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
                    results.append(result)
                    rate = result.refreshes / result.seconds
                    print(
                        f"rep {rep + 1} statement cache {mode}: {rate:.1f} refreshes/s,"
                        f" errors {result.errors}",
                        flush=True,
                    )
            micro = asyncio.run(_statements(cl.service_dsn, app, client_id, args.blocks))
    finally:
        cl.close()
    print(
        f"per statement, one connection: cache on {micro['us_per_statement_on']} us,"
        f" off {micro['us_per_statement_off']} us ({micro['off_vs_on']}x)"
    )
    summary = _summary(results)
    on = summary[0]
    for row in summary:
        row["p50_vs_on"] = row["p50_ms"] / on["p50_ms"] if on["p50_ms"] else None
        row["rate_vs_on"] = row["rate_median"] / on["rate_median"] if on["rate_median"] else None
        print(
            f"statement cache {row['statement_cache']:>3}: {row['rate_median']:.1f} refreshes/s"
            f" (runs {row['rates']}),"
            f" p50 {row['p50_ms']:.1f} ms ({row['p50_vs_on']:.2f}x on),"
            f" p99 {row['p99_ms']:.1f} ms, errors {row['errors']}"
        )
    if args.out:
        body = {
            "refresh": summary,
            "statements": micro,
            "quick": args.duration < 10,
            # Other work on the machine skews both modes; alternating spreads it evenly.
            "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "workers": args.workers,
            "connections": args.connections,
            "duration_s": args.duration,
        }
        args.out.write_text(json.dumps(body, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
