"""Password sign-in beside password + TOTP sign-in: rate and latency (issue 12).

    python -m ops.bench.mfa_login [--users N] [--duration S] [--connections C]

A throwaway Postgres (the harness's cluster), one app, the service under
uvicorn with one worker per core. Two groups of accounts are prepared through
the public API: one with a password only, one that has also enrolled TOTP
(``POST /v1/mfa/totp`` and ``/confirm`` with a code computed here). Then, for
``--duration`` seconds each, ``--connections`` concurrent clients sign in:

* ``password``: ``POST /v1/login`` -> 200 with the token set;
* ``password+totp``: ``POST /v1/login`` -> 403 ``mfa_required`` with a flow
  token, then ``POST /v1/login/mfa`` with the current TOTP code -> 200.

A sign-in is timed from its first request to the token set. A TOTP code is
accepted once per account and time step (no replay), so the TOTP group needs
more accounts than sign-ins fit in one 30 s step; an account is not reused
within a step. The load generator is Python (httpx) on the same machine, for
both groups alike: the figures compare the two, they are not the service's
ceiling (``make bench`` measures that with wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
from ops.bench import cluster as bench_cluster
from ops.bench import servers
from ops.bench.bank import PASSWORD
from ops.bench.stats import percentile

from oneauth.apps import lifecycle
from oneauth.db import ops
from oneauth.localpg import free_port
from oneauth.settings import Settings

APP_ID = "bench-mfa"
STEP = 30


@dataclass
class Account:
    email: str
    secret: str | None = None  # TOTP seed, for the TOTP group
    last_step: int = -1


@dataclass
class Result:
    name: str
    signins: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    def to_json(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "scenario": self.name,
            "signins": self.signins,
            "errors": self.errors,
            "rate": self.signins / self.seconds if self.seconds else 0.0,
            "p50_ms": percentile(lat, 50) if lat else None,
            "p95_ms": percentile(lat, 95) if lat else None,
            "p99_ms": percentile(lat, 99) if lat else None,
        }


async def _prepare(http: httpx.AsyncClient, n: int, totp: bool, tag: str) -> list[Account]:
    """Sign up ``n`` accounts (and enrol TOTP for each when ``totp``), 8 at a time."""
    accounts = [Account(f"{tag}-{i}@bench.example") for i in range(n)]
    gate = asyncio.Semaphore(8)
    base = f"/apps/{APP_ID}/v1"

    async def one(account: Account) -> None:
        async with gate:
            r = await http.post(
                f"{base}/signup", json={"email": account.email, "password": PASSWORD}
            )
            r.raise_for_status()
            if not totp:
                return
            auth = {"authorization": f"Bearer {r.json()['access_token']}"}
            r = await http.post(f"{base}/mfa/totp", json={}, headers=auth)
            r.raise_for_status()
            enrol = r.json()
            code = pyotp.TOTP(enrol["secret"]).now()
            r = await http.post(
                f"{base}/mfa/totp/confirm",
                json={"factor_id": enrol["factor_id"], "code": code},
                headers=auth,
            )
            r.raise_for_status()
            account.secret = enrol["secret"]
            account.last_step = int(time.time()) // STEP  # that code is spent

    await asyncio.gather(*(one(a) for a in accounts))
    return accounts


async def _measure(
    http: httpx.AsyncClient, accounts: list[Account], *, totp: bool, seconds: float, conns: int
) -> Result:
    base = f"/apps/{APP_ID}/v1"
    if totp:
        # The enrolment spent each account's code of its step: start in a fresh step.
        spent = max(a.last_step for a in accounts)
        await asyncio.sleep(max(0.0, (spent + 1) * STEP - time.time()))
    ready: deque[Account] = deque(accounts)
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    def take() -> Account | None:
        if not totp:  # a password may be used again at once
            ready.rotate(-1)
            return ready[0]
        step = int(time.time()) // STEP
        for _ in range(len(ready)):
            account = ready.popleft()
            ready.append(account)
            if account.last_step < step:
                account.last_step = step
                return account
        return None

    async def client() -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            account = take()
            if account is None:
                raise RuntimeError("every TOTP account used in this step: raise --users")
            t0 = time.perf_counter()
            r = await http.post(
                f"{base}/login", json={"email": account.email, "password": PASSWORD}
            )
            if totp and r.status_code == 403 and r.json().get("code") == "mfa_required":
                assert account.secret is not None
                r = await http.post(
                    f"{base}/login/mfa",
                    json={
                        "flow_token": r.json()["flow_token"],
                        "factor": "totp",
                        "code": pyotp.TOTP(account.secret).now(),
                    },
                )
            if r.status_code == 200 and "access_token" in r.json():
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(conns)))
    return Result(
        "password+totp" if totp else "password",
        len(latencies),
        errors,
        time.monotonic() - started,
        latencies,
    )


async def _run(base_url: str, args: argparse.Namespace) -> list[Result]:
    limits = httpx.Limits(max_connections=args.connections * 2)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        plain = await _prepare(http, args.connections * 4, False, "pwd")
        with_totp = await _prepare(http, args.users, True, "totp")
        results: list[Result] = []
        for _ in range(args.reps):
            # Warm both paths, then measure them alternately: drift hits both.
            results.append(
                await _measure(
                    http, plain, totp=False, seconds=args.duration, conns=args.connections
                )
            )
            results.append(
                await _measure(
                    http, with_totp, totp=True, seconds=args.duration, conns=args.connections
                )
            )
        return results


def _summary(results: list[Result]) -> list[dict[str, Any]]:
    out = []
    for name in ("password", "password+totp"):
        runs = [r.to_json() for r in results if r.name == name]
        merged = [x for r in results if r.name == name for x in r.latencies_ms]
        out.append(
            {
                "scenario": name,
                "rate_median": statistics.median(r["rate"] for r in runs),
                "rates": [round(r["rate"], 1) for r in runs],
                "errors": sum(r["errors"] for r in runs),
                "p50_ms": percentile(merged, 50) if merged else None,
                "p99_ms": percentile(merged, 99) if merged else None,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.mfa_login",
        description="Password sign-in beside password + TOTP sign-in (rate, p50, p99).",
    )
    parser.add_argument("--users", type=int, default=2000, help="accounts with TOTP (default 2000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--reps", type=int, default=2, help="measurements of each (alternating)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent sign-ins")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
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
        with ops.connect(cl.dsn) as conn:
            lifecycle.provision(conn, settings, APP_ID, "Bench MFA")
        with servers.start_service(
            dsn=cl.service_dsn, master_key=cl.master_key, workers=args.workers, port=port
        ):
            results = asyncio.run(_run(f"http://127.0.0.1:{port}", args))
    finally:
        cl.close()
    summary = _summary(results)
    for row in summary:
        print(
            f"{row['scenario']:>14}: {row['rate_median']:.1f} sign-ins/s (runs {row['rates']}),"
            f" p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, errors {row['errors']}"
        )
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
