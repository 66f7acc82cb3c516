"""The ceilings every scenario is compared with, measured in the same run.

* argon2id verifies/s on all cores at the hasher's configured parameters;
* raw sign and verify/s (``cryptography`` only) for ES256 and RS256, per core
  and on all cores;
* bare uvicorn + Starlette JSON requests/s, and the same plus one asyncpg
  primary-key lookup, both served like the service and loaded by the same wrk.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
from ops.bench import cpu_limits, servers
from ops.bench.loadrun import LoadSpec, Shape, measure
from ops.bench.procstat import CpuMeter
from ops.bench.serve_bare import PK_ROWS
from ops.bench.stats import Limit, spread, summarize
from ops.bench.wrk import Request, write_requests

ALGS = ("ES256", "RS256")


def _repeat(rate: Callable[[], float], reps: int) -> tuple[float, list[float]]:
    values = [rate() for _ in range(reps)]
    return statistics.median(values), values


def argon2_limit(
    pool: cpu_limits.CpuPool, seconds: float, reps: int, name: str, *, per_core: bool = True
) -> Limit:
    """argon2id verifies/s on all cores (and on one), at the hasher's parameters."""
    cores = pool.cores
    rate, values = _repeat(lambda: pool.rate(cpu_limits.argon2_worker, (), cores, seconds), reps)
    one = pool.rate(cpu_limits.argon2_worker, (), 1, seconds) if per_core else None
    detail = {
        "params": cpu_limits.argon2_parameters(),
        "reps": values,
        "spread": spread(values),
        "per_core": one,
    }
    return Limit(name, rate, "verifies/s", detail)


def cpu_limits_all(
    pool: cpu_limits.CpuPool,
    seconds: float,
    reps: int,
    log: Callable[[str], None],
    *,
    signature_reps: int | None = None,
) -> list[Limit]:
    cores = pool.cores
    pool.disturbed.clear()
    argon = argon2_limit(pool, seconds * 2, reps, "argon2id_verify")
    out = [argon]
    log(
        f"  argon2id verify ({argon.detail['params']}): {argon.rate:.1f}/s on {cores} cores,"
        f" {argon.detail['per_core']:.1f}/s on one"
    )
    for alg in ALGS:
        for op in ("sign", "verify"):
            out.append(_signature_limit(pool, alg, op, seconds, signature_reps or reps))
            one = out[-1].detail["per_core"]
            log(f"  {alg} {op}: {out[-1].rate:,.0f}/s on {cores} cores, {one:,.0f}/s on one")
    if pool.disturbed:
        log(f"  (repeated, disturbed by other processes: {'; '.join(pool.disturbed)})")
        out = [replace(x, detail={**x.detail, "disturbed": list(pool.disturbed)}) for x in out]
    return out


def _signature_limit(
    pool: cpu_limits.CpuPool, alg: str, op: str, seconds: float, reps: int
) -> Limit:
    args = (alg, op)
    rate, values = _repeat(
        lambda: pool.rate(cpu_limits.signature_worker, args, pool.cores, seconds), reps
    )
    one = pool.rate(cpu_limits.signature_worker, args, 1, seconds)
    detail = {"reps": values, "spread": spread(values), "per_core": one}
    return Limit(f"{alg}_{op}", rate, f"{op}s/s", detail)


def prepare_pk_table(dsn: str) -> None:
    """bench_limits.pk: PK_ROWS rows in a schema of the service's login role."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench_limits")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_limits.pk"
            " (id integer PRIMARY KEY, name text NOT NULL)"
        )
        conn.execute(
            "INSERT INTO bench_limits.pk SELECT g, 'row ' || g FROM generate_series(1, %s) g"
            " ON CONFLICT DO NOTHING",
            (PK_ROWS,),
        )
        conn.execute("ANALYZE bench_limits.pk")


def _http_limit(
    kind: str,
    path: str,
    *,
    workers: int,
    dsn: str | None,
    shape: Shape,
    pg_root: int | None,
    cores: int,
) -> tuple[Limit, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="oneauth-bench-") as tmp:
        req_file = Path(tmp) / "requests.tsv"
        write_requests(req_file, [Request("GET", path)])
        with servers.start_bare(kind, workers=workers, dsn=dsn) as srv:
            meter = CpuMeter(service=srv.pid, postgres=pg_root, cores=cores)
            spec = LoadSpec(script="list.lua", make_input=lambda: req_file, expect='"')
            result = measure(srv.port, spec, shape, meter)
    summary = summarize(result.samples)
    cpu = result.cpu
    detail: dict[str, Any] = {
        "p50_ms": summary.p50_ms,
        "p99_ms": summary.p99_ms,
        "errors": summary.errors,
        "reps": [s.rps for s in result.samples],
        "spread": summary.rps_spread,
        "discarded": result.discarded,
        "workers": workers,
    }
    if cpu is not None:
        detail["cpu_cores"] = {
            "server": cpu.service,
            "postgres": cpu.postgres,
            "loadgen": cpu.loadgen,
        }
        # What wrk could push with one full core: proof it is not the bottleneck.
        detail["loadgen_capacity_rps"] = summary.rps / cpu.loadgen if cpu.loadgen > 0 else None
    return Limit(f"bare_{kind}", summary.rps, "requests/s", detail), detail


def http_limits(
    *,
    dsn: str,
    workers: int,
    shape: Shape,
    pg_root: int | None,
    cores: int,
    log: Callable[[str], None],
) -> list[Limit]:
    prepare_pk_table(dsn)
    out = []
    for kind, path, name in (
        ("json", "/json", "uvicorn + Starlette JSON"),
        ("pk", "/pk", "+ 1 asyncpg PK lookup"),
    ):
        limit, detail = _http_limit(
            kind,
            path,
            workers=workers,
            dsn=dsn if kind == "pk" else None,
            shape=shape,
            pg_root=pg_root,
            cores=cores,
        )
        cap = detail.get("loadgen_capacity_rps")
        log(
            f"  {name}: {limit.rate:,.0f} req/s, p99 {detail['p99_ms']:.1f} ms"
            + (f" (wrk could do ~{cap:,.0f}/s per core)" if cap else "")
        )
        out.append(limit)
    return out
