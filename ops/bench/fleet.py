"""The fleet of apps: provisioning in parallel, and the timings issue 6 asks for.

* provisioning one app: a few apps provisioned one after another on one
  connection, each timed alone (median reported);
* the rest of the fleet: provisioned by several processes, each with its
  own psycopg connection, so 10,000 apps take minutes, not an hour;
* migrate-all: ``migrate_all`` over the whole fleet when nothing is pending
  (the deploy-time cost of checking every ledger), and, once, with one new
  trivial migration pending in every schema (the cost of a real roll-out).
"""

from __future__ import annotations

import multiprocessing
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg_pool

from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.db import ops, templates
from oneauth.settings import Settings

PREFIX = "bench-"
DEADLINE_PER_APP = 5.0  # seconds; a fleet that provisions slower than this is stuck


def app_id(n: int) -> str:
    """The n-th fleet app (1-based): bench-00001 ... bench-10000."""
    return f"{PREFIX}{n:05d}"


def existing(dsn: str) -> set[str]:
    with ops.connect(dsn) as conn:
        return {a.app_id for a in lifecycle.list_apps(conn) if a.app_id.startswith(PREFIX)}


@dataclass
class FleetTiming:
    apps: int
    provisioned_now: int
    seconds: float
    single_app_seconds: list[float]

    def to_json(self) -> dict[str, Any]:
        single = self.single_app_seconds
        return {
            "apps": self.apps,
            "provisioned_now": self.provisioned_now,
            "seconds": self.seconds,
            "apps_per_second": self.provisioned_now / self.seconds if self.seconds else None,
            "single_app_seconds": single,
            "single_app_median_s": statistics.median(single) if single else None,
        }


def _provision(conn: lifecycle.Conn, settings: Settings, n: int) -> None:
    lifecycle.provision(conn, settings, app_id(n), f"Bench app {n}")


def ensure(
    settings: Settings,
    count: int,
    *,
    parallel: int,
    single_samples: int,
    progress: Callable[[str], None] = print,
) -> FleetTiming:
    """Provision bench-00001..count that do not exist yet; time one-app provisioning too."""
    have = existing(settings.database_url)
    missing = [n for n in range(1, count + 1) if app_id(n) not in have]
    started = time.perf_counter()
    single: list[float] = []
    # The first few are timed one by one, alone on the machine.
    with ops.connect(settings.database_url) as conn:
        for n in missing[:single_samples]:
            t0 = time.perf_counter()
            _provision(conn, settings, n)
            single.append(time.perf_counter() - t0)
    rest = missing[single_samples:]
    if rest:
        _provision_parallel(settings, rest, parallel, progress)
    return FleetTiming(
        apps=count,
        provisioned_now=len(missing),
        seconds=time.perf_counter() - started,
        single_app_seconds=single,
    )


# One connection per provisioning process, opened by the pool's initializer.
_WORKER: dict[str, Any] = {}


def _worker_init(settings: Settings) -> None:
    _WORKER["settings"] = settings
    _WORKER["conn"] = ops.connect(settings.database_url)


def _worker_provision(n: int) -> int:
    _provision(_WORKER["conn"], _WORKER["settings"], n)
    return n


def _provision_parallel(
    settings: Settings, numbers: list[int], parallel: int, progress: Callable[[str], None]
) -> None:
    """Provision in ``parallel`` spawned processes, each with its own connection.

    Processes, not threads: loading the new RSA keys (jwcrypto -> cryptography
    key validation, ~30 ms each) holds the GIL, so threads barely overlap.
    """
    deadline = time.monotonic() + DEADLINE_PER_APP * len(numbers) / parallel + 60
    step = max(1, len(numbers) // 10)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=parallel, mp_context=ctx, initializer=_worker_init, initargs=(settings,)
    ) as pool:
        futures = [pool.submit(_worker_provision, n) for n in numbers]
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()
                if done % step == 0:
                    progress(f"  provisioned {done}/{len(numbers)}")
                if time.monotonic() > deadline:
                    raise TimeoutError("provisioning the fleet is far slower than expected")
        except BaseException:
            for f in futures:
                f.cancel()
            raise


# ------------------------------------------------------------------ migrations


def migrate_noop(dsn: str, parallelism: int) -> dict[str, Any]:
    """migrate_all when every schema is current: checksum checks and locks only."""
    summary = migrate_all(dsn, parallelism=parallelism)
    return {
        "schemas": len(summary.outcomes),
        "seconds": summary.seconds,
        "failed": len(summary.failed),
        "parallelism": parallelism,
    }


PROBE_TABLE = "bench_migrate_probe"


def migrate_one_new(dsn: str, parallelism: int) -> dict[str, Any]:
    """Apply one trivial new migration to every app schema, timed, then undo it.

    The templates are copied to a temp dir with one extra file, so the real
    ``sql/`` is untouched. The undo (drop the table, forget the ledger row)
    keeps a kept cluster usable with the real release afterwards.
    """
    real = templates.sql_root()
    with tempfile.TemporaryDirectory(prefix="oneauth-bench-sql-") as tmp:
        root = Path(tmp)
        shutil.copytree(real / "control", root / "control")
        shutil.copytree(real / "app", root / "app")
        version = templates.latest_version("app") + 1
        (root / "app" / f"{version:04d}_{PROBE_TABLE}.sql").write_text(
            f"CREATE TABLE {PROBE_TABLE} (id integer PRIMARY KEY);\n"
        )
        summary = migrate_all(dsn, parallelism=parallelism, sql_root=root)
    try:
        return {
            "schemas": len(summary.outcomes),
            "seconds": summary.seconds,
            "failed": len(summary.failed),
            "first_error": summary.failed[0].error if summary.failed else None,
            "parallelism": parallelism,
        }
    finally:
        _undo_probe(dsn, version, parallelism)


def _undo_probe(dsn: str, version: int, parallelism: int) -> None:
    with ops.connect(dsn) as conn:
        apps = [a.app_id for a in lifecycle.list_apps(conn)]
    with psycopg_pool.ConnectionPool(
        dsn,
        min_size=parallelism,
        max_size=parallelism,
        kwargs={"autocommit": True},
        open=True,
    ) as pool:

        def undo(app: str) -> None:
            with pool.connection() as conn, conn.transaction():
                with ops.app_context(conn, lifecycle.names_of(conn, app)):
                    conn.execute(f"DROP TABLE IF EXISTS {PROBE_TABLE}")
                    conn.execute("DELETE FROM schema_migrations WHERE version = %s", (version,))
                conn.execute(
                    "UPDATE oneauth.apps SET schema_version = %s WHERE app_id = %s",
                    (version - 1, app),
                )

        with ThreadPoolExecutor(max_workers=parallelism) as ex:
            list(ex.map(undo, apps))
