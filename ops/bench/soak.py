"""Soak: mixed load for a long while, 0 errors, and memory that stays flat (issue 16, Q6).

    python -m ops.bench.soak [--duration S] [--out bench/soak.json] [--workers N]

A throwaway Postgres (the harness's cluster), one app, ``oneauth serve`` with
one worker per core. Two wrk processes run side by side for ``--duration``
seconds (600 by default, `make soak`): refresh-token rotation over
``--chains`` families (every request a never-used token, its successor taken
from the answer), and a round-robin list of client_credentials grants,
discovery, JWKS and app metadata, with a password login every
``--login-every`` requests (argon2: a login costs the service ~30 cheap
requests, so ~15% of the list's service CPU, ~10% of the whole soak's).

Every ``--sample`` seconds memory is read from /proc and Postgres:

* ``service_rss_kib``: RSS of the service (supervisor and workers);
* ``pg_private_kib``: Private_Clean + Private_Dirty (USS) of every Postgres
  process but the postmaster and the sampler's own connection: what a backend
  allocates for itself (caches, plans, work_mem). (A page
  of shared memory mapped by one process only counts as private too; measured:
  USS stays within 2% of Pss_Anon, the strictly anonymous part);
* ``pg_anon_kib``: their Pss_Anon, strictly anonymous memory (no shared
  memory page counts here): a leak shows here; and ``pg_client_anon_kib`` the client backends'
  part of it; ``pg_anon_by_type`` and ``pg_processes_by_type`` split it by
  ``pg_stat_activity.backend_type`` (client backend, autovacuum worker, ...);
* ``pg_shared_kib``: their Pss_Shmem, their share of the shared memory segment
  (shared_buffers and the rest). It grows as backends touch more buffers (the
  refresh_tokens and audit_log tables grow with every request) and is bounded
  by ``shared_memory_size``: growth here is a cache filling, not a leak;
* ``pg_buffers_kib``: buffers holding a page (pg_buffercache, when the
  extension is installed; else absent), bounded by ``shared_buffers``.

PSS of anonymous pages the backends still share with the postmaster since the
fork, and of mapped files, is neither and left out (small and constant).

The report (``--out``): ``rate_per_s`` and ``errors`` (target >= 1,000/s, 0),
per wrk run its rate, latencies and error detail; ``cpu_cores`` over the run
(service, postgres, wrk, irq, ``harness``: this process with its sampler, and
``other``: anything else on the machine, a disturbed run when above 0.25, with
the busiest ``noise`` processes named) and
``cpu_ms_per_request`` of the service and Postgres, which say whether a low
rate is the service or the machine; ``slope``: per series above the
least-squares slope over the run after ``--warmup`` s (KiB per minute, percent
per 10 minutes, first and last KiB, and ``bound_kib`` for the shared ones);
``lasting_backends``: the client backends alive from the warm-up to the end
(a pool replaces a connection after ``ONEAUTH_POOL_MAX_QUERIES`` queries, so
the sum over all of them moves in steps when a fresh one, still small, takes
a worn one's place): the sum of their own slopes over the run and over its
first and second half (a backend that warms up grows in the first and stops;
a leak keeps growing in the second), their median and largest size, the
largest any client backend reached (``anon_kib_max_any``: times the number
of connections, the bound of ``pg_client_anon_kib``), and the three that
grew most, by application_name and last query;
``sample_ms``: the median wall time of one sample; ``samples``: the series.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from ops.bench import cluster as bench_cluster
from ops.bench import servers, wrk
from ops.bench.bank import PASSWORD
from ops.bench.procstat import CpuMeter, all_stats, smaps_rollup_kib, tree
from ops.bench.wrk import Request

from oneauth.apps import lifecycle
from oneauth.db import ops
from oneauth.localpg import free_port
from oneauth.oauth import clients
from oneauth.settings import Settings

APP_ID = "bench-soak"
CC_SCOPE = "orders:read"


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, KiB) points, in KiB per minute."""
    if len(points) < 3:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    return 60.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    def __init__(self, service: int, postmaster: int, every: float, admin_dsn: str) -> None:
        super().__init__(daemon=True)
        self.service, self.postmaster, self.every = service, postmaster, every
        self.samples: list[dict[str, Any]] = []
        self.backends: dict[int, list[tuple[float, float]]] = {}
        self.seen: dict[int, tuple[str, str]] = {}  # pid -> application_name, last query
        self.took: list[float] = []
        self.started = time.monotonic()
        self.halt = threading.Event()
        self.db = psycopg.connect(admin_dsn, autocommit=True)
        self.own = self.db.info.backend_pid
        self.buffercache = (
            self.db.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_buffercache'"
            ).fetchone()
            is not None
        )
        if self.buffercache:
            self.db.execute("CREATE EXTENSION IF NOT EXISTS pg_buffercache")
        bounds = self.db.execute(
            "SELECT current_setting('shared_buffers')::text,"
            " pg_size_bytes(current_setting('shared_buffers')) / 1024,"
            " pg_size_bytes(current_setting('shared_memory_size', true)) / 1024"
        ).fetchone()
        assert bounds is not None
        self.shared_buffers, self.shared_buffers_kib, self.shared_memory_kib = bounds

    def sample(self) -> None:
        began = time.monotonic()
        stats = all_stats()
        service = sum(_rss_kib(p) for p in tree(self.service, stats))
        procs = tree(self.postmaster, stats) - {self.postmaster, self.own}
        activity = self.db.execute(
            "SELECT pid, backend_type, application_name, left(query, 120)"
            " FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        ).fetchall()
        kinds = {pid: kind for pid, kind, _, _ in activity}
        for pid, _, name, query in activity:
            self.seen[pid] = (name or "", query or "")
        private = shared = anon = 0
        anon_by_type: dict[str, int] = {}
        count_by_type: dict[str, int] = {}
        for pid in procs:
            fields = smaps_rollup_kib(pid)
            if not fields:
                continue  # gone since the walk
            kind = str(kinds.get(pid, "other"))
            private += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
            shared += fields.get("Pss_Shmem", 0)
            own = fields.get("Pss_Anon", 0)
            anon += own
            anon_by_type[kind] = anon_by_type.get(kind, 0) + own
            count_by_type[kind] = count_by_type.get(kind, 0) + 1
            if kind == "client backend":
                self.backends.setdefault(pid, []).append((began - self.started, float(own)))
        row: dict[str, Any] = {
            "t": round(began - self.started, 1),
            "service_rss_kib": service,
            "pg_private_kib": private,
            "pg_anon_kib": anon,
            "pg_client_anon_kib": anon_by_type.get("client backend", 0),
            "pg_shared_kib": shared,
        }
        if self.buffercache:
            used = self.db.execute(
                "SELECT count(*) * current_setting('block_size')::int / 1024"
                " FROM pg_buffercache WHERE relfilenode IS NOT NULL"
            ).fetchone()
            row["pg_buffers_kib"] = int(used[0]) if used else 0
        row["pg_processes"] = sum(count_by_type.values())
        row["pg_anon_by_type"] = anon_by_type
        row["pg_processes_by_type"] = count_by_type
        self.samples.append(row)
        self.took.append(time.monotonic() - began)

    def lasting_backends(self, warmup: float) -> dict[str, Any]:
        """Client backends alive through the whole run after ``warmup``: their own slopes.

        The sum over all processes moves when one comes or goes (an autovacuum
        worker, a pool connection replaced); a backend that lives through the
        run and keeps growing is what a leak looks like.
        """
        last = max((pts[-1][0] for pts in self.backends.values() if pts), default=0.0)
        lasting = {
            pid: [p for p in pts if p[0] >= warmup]
            for pid, pts in self.backends.items()
            if pts and pts[0][0] <= warmup and pts[-1][0] >= last - 2 * self.every
        }

        mid = (warmup + last) / 2
        halves = {
            "": lambda t: True,
            "_first_half": lambda t: t <= mid,
            "_second_half": lambda t: t >= mid,
        }

        def total(keep: Callable[[float], bool]) -> float | None:
            """Their slopes summed over the points ``keep`` admits (None: too few)."""
            found = [slope_per_minute([p for p in pts if keep(p[0])]) for pts in lasting.values()]
            return None if None in found else round(sum(s or 0.0 for s in found), 1)

        by_pid = {
            pid: s for pid, pts in lasting.items() if (s := slope_per_minute(pts)) is not None
        }
        slopes = sorted(by_pid.values())
        growers = [
            {
                "kib_per_minute": round(by_pid[pid], 1),
                "first_kib": lasting[pid][0][1],
                "last_kib": lasting[pid][-1][1],
                "application_name": self.seen.get(pid, ("", ""))[0],
                "last_query": self.seen.get(pid, ("", ""))[1],
            }
            for pid in sorted(by_pid, key=by_pid.__getitem__, reverse=True)[:3]
        ]
        every = [kib for pts in self.backends.values() for _, kib in pts]
        return {
            "client_backends_seen": len(self.backends),
            "anon_kib_max_any": max(every, default=None),
            "backends": len(slopes),
            **{f"kib_per_minute_sum{name}": total(keep) for name, keep in halves.items()},
            "kib_per_minute_median": round(statistics.median(slopes), 2) if slopes else None,
            "kib_per_minute_max": round(slopes[-1], 2) if slopes else None,
            "anon_kib_last_median": (
                statistics.median(pts[-1][1] for pts in lasting.values()) if lasting else None
            ),
            "anon_kib_last_max": max((pts[-1][1] for pts in lasting.values()), default=None),
            "growers": growers,
        }

    def run(self) -> None:
        while not self.halt.wait(self.every):
            self.sample()

    def close(self) -> None:
        self.db.close()


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _prepare(base: str, client_id: str, chains: int) -> list[str]:
    tokens: list[str] = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in range(chains):
            r = http.post(
                f"/apps/{APP_ID}/v1/signup",
                json={"email": f"soak-{i}@bench.example", "password": PASSWORD},
            )
            r.raise_for_status()
            tokens.append(f"{APP_ID}\t{client_id}\t{r.json()['refresh_token']}")
    return tokens


def _mix(cc_id: str, secret: str, login_every: int) -> list[Request]:
    import base64

    basic = base64.b64encode(f"{cc_id}:{secret}".encode()).decode()
    form = ("Content-Type", "application/x-www-form-urlencoded")
    cheap = [
        Request(
            "POST",
            f"/apps/{APP_ID}/oauth/token",
            f"grant_type=client_credentials&scope={CC_SCOPE}",
            (form, ("Authorization", f"Basic {basic}")),
        ),
        Request("GET", f"/apps/{APP_ID}/.well-known/openid-configuration"),
        Request("GET", f"/apps/{APP_ID}/.well-known/jwks.json"),
        Request("GET", f"/apps/{APP_ID}/v1/app"),
    ]
    login = Request(
        "POST",
        f"/apps/{APP_ID}/v1/login",
        json.dumps({"email": "soak-0@bench.example", "password": PASSWORD}),
        (("Content-Type", "application/json"),),
    )
    out = [cheap[i % len(cheap)] for i in range(max(1, login_every - 1))]
    return [*out, login]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chains", type=int, default=64, help="refresh families")
    parser.add_argument("--connections", type=int, default=16, help="per wrk process")
    parser.add_argument("--login-every", type=int, default=200)
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds left out of slopes")
    parser.add_argument("--out", type=Path, default=Path("bench/soak.json"))
    args = parser.parse_args(argv)

    cl = bench_cluster.start(None, durable=False)
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            env="development", database_url=cl.dsn, public_url=base, master_key=cl.master_key
        )
        with ops.connect(cl.dsn) as conn:
            made = lifecycle.provision(conn, settings, APP_ID, "Bench soak")
            with conn.transaction(), ops.app_context(conn, made.app.names):
                cc, secret = clients.create(
                    conn,
                    clients.ClientSpec(
                        name="Soak",
                        kind="confidential",
                        grant_types=frozenset({"client_credentials"}),
                        scopes=frozenset({CC_SCOPE}),
                    ),
                )
        assert secret is not None
        client_id = str(made.extra["default_client_id"])
        extra = {"ONEAUTH_EMAIL_WORKER": "off", "ONEAUTH_AUDIT_SEALER": "off"}
        with servers.start_service(
            dsn=cl.service_dsn,
            master_key=cl.master_key,
            workers=args.workers,
            port=port,
            **extra,
        ) as server:
            tokens = _prepare(base, client_id, args.chains)
            tmp = Path(tempfile.mkdtemp(prefix="oneauth-soak-"))
            refresh_in, mix_in = tmp / "refresh.tsv", tmp / "mix.tsv"
            refresh_in.write_text("".join(t + "\n" for t in tokens))
            wrk.write_requests(mix_in, _mix(cc.client_id, secret, args.login_every))
            postmaster = cl.postmaster
            assert postmaster is not None
            meter = CpuMeter(service=server.pid, postgres=postmaster, cores=os.cpu_count() or 1)
            sampler = Sampler(server.pid, postmaster, args.sample, cl.admin_dsn)
            sampler.sample()
            sampler.start()
            runs: dict[str, Any] = {}

            def go(name: str, script: str, path: Path, out: Path | None = None) -> None:
                runs[name] = wrk.run(
                    port=port,
                    script=script,
                    input_path=path,
                    seconds=args.duration,
                    connections=args.connections,
                    threads=1,
                    meter=meter,
                    out_path=out,
                )

            threads = [
                threading.Thread(
                    target=go, args=("refresh", "refresh.lua", refresh_in, tmp / "left.tsv")
                ),
                threading.Thread(target=go, args=("mix", "list.lua", mix_in)),
            ]
            before, wrk_before, own_before = meter.snapshot(), _children_cpu(), _own_cpu()
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - started
            # Both wrk processes have been reaped: their CPU is in our children's times.
            cpu = meter.split(before, meter.snapshot(), (_children_cpu() - wrk_before) / wall)
            harness = (_own_cpu() - own_before) / wall
            sampler.halt.set()
            sampler.join()
            sampler.sample()
            sampler.close()
    finally:
        cl.close()

    samples = sampler.samples
    steady = [s for s in samples if s["t"] >= args.warmup] or samples

    def slope(key: str, bound_kib: int | None = None) -> dict[str, float | None]:
        per_min = slope_per_minute([(s["t"], s[key]) for s in steady])
        level = statistics.fmean(s[key] for s in steady) if steady else 0
        pct = None if per_min is None or not level else round(100 * per_min * 10 / level, 2)
        return {
            "kib_per_minute": None if per_min is None else round(per_min, 1),
            "percent_per_10_minutes": pct,
            "first_kib": steady[0][key] if steady else None,
            "last_kib": steady[-1][key] if steady else None,
            **({} if bound_kib is None else {"bound_kib": bound_kib}),
        }

    requests = sum(r.sample.requests for r in runs.values())
    errors = sum(r.sample.errors for r in runs.values())
    slopes = {
        "service_rss": slope("service_rss_kib"),
        "pg_private": slope("pg_private_kib"),
        "pg_anon": slope("pg_anon_kib"),
        "pg_client_anon": slope("pg_client_anon_kib"),
        "pg_shared": slope("pg_shared_kib", sampler.shared_memory_kib),
    }
    if sampler.buffercache:
        slopes["pg_buffers"] = slope("pg_buffers_kib", sampler.shared_buffers_kib)
    report = {
        "what": "mixed load: refresh rotation beside client_credentials/discovery/JWKS/app"
        f" metadata with a login every {args.login_every} requests",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "duration_s": round(wall, 1),
        "workers": args.workers,
        "requests": requests,
        "rate_per_s": round(requests / wall, 1) if wall else 0,
        "errors": errors,
        "target": {"rate_per_s": 1000, "errors": 0},
        "runs": {
            name: {
                "requests": r.sample.requests,
                "rate_per_s": round(r.sample.requests / max(r.sample.seconds, 1e-6), 1),
                "p50_ms": r.sample.p50_ms,
                "p99_ms": r.sample.p99_ms,
                "max_ms": r.sample.max_ms,
                "errors": r.sample.errors,
                "error_detail": r.sample.error_detail,
            }
            for name, r in runs.items()
        },
        "cpu_cores": {
            "service": round(cpu.service, 2),
            "postgres": round(cpu.postgres, 2),
            "wrk": round(cpu.loadgen, 2),
            "irq": round(cpu.irq, 2),
            "harness": round(harness, 2),
            "other": round(max(0.0, cpu.other - harness), 2),
            **({"noise": cpu.noise} if cpu.noise else {}),
        },
        "cpu_ms_per_request": {
            "service": round(1000 * cpu.service * wall / max(requests, 1), 3),
            "postgres": round(1000 * cpu.postgres * wall / max(requests, 1), 3),
        },
        "shared_buffers": sampler.shared_buffers,
        "slope": slopes,
        "lasting_backends": sampler.lasting_backends(args.warmup),
        "warmup_s": args.warmup,
        "sample_ms": round(1000 * statistics.median(sampler.took), 1),
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"soak {wall:.0f} s: {report['rate_per_s']} req/s, {errors} errors;"
        f" service RSS {slopes['service_rss']['kib_per_minute']} KiB/min,"
        f" Postgres private {slopes['pg_private']['kib_per_minute']} KiB/min"
        f" (anonymous {slopes['pg_anon']['kib_per_minute']}, of client backends"
        f" {slopes['pg_client_anon']['kib_per_minute']}),"
        f" shared {slopes['pg_shared']['kib_per_minute']} KiB/min"
        f" (bound {sampler.shared_memory_kib} KiB); CPU cores {report['cpu_cores']} -> {args.out}"
    )
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
