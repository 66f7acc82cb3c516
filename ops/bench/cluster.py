"""The benchmark's Postgres: a throwaway local cluster, or one kept for reuse.

Same machinery as the test suite (``oneauth.localpg``), so fsync is off unless
``--durable``: the numbers then show the service's CPU and round trips, not this
VM's disk flush latency. With ``--cluster-dir`` the cluster, the service role's
password and the fleet stay there for the next run (``bench/.cluster``).
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from ops.bench.procstat import postmaster_pid

from oneauth.apps.migrate import migrate_all
from oneauth.db.bootstrap import bootstrap
from oneauth.localpg import LocalPostgres, scratch_dir
from oneauth.secretbox import generate_master_key

ROLE = "oneauth_bench"
SERVICE_ROLE = f"{ROLE}_service"  # what `oneauth serve` logs in as
DATABASE = "oneauth_bench"


@dataclass
class BenchCluster:
    pg: LocalPostgres
    root: Path
    keep: bool
    dsn: str  # the operator role: migrations, provisioning, per-app set-up (D1)
    service_dsn: str  # what `oneauth serve` logs in as (LOGIN NOINHERIT only)
    admin_dsn: str
    master_key: str  # seals the apps' signing keys; the service must get the same
    statements: bool = False  # pg_stat_statements loaded (--statements)

    @property
    def datadir(self) -> Path:
        return self.pg.datadir

    @property
    def postmaster(self) -> int | None:
        return postmaster_pid(self.pg.datadir)

    @property
    def state_file(self) -> Path:
        return self.root / "bench-state.json"

    def load_state(self) -> dict[str, Any]:
        if self.keep and self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            assert isinstance(data, dict)
            return data
        return {}

    def save_state(self, state: dict[str, Any]) -> None:
        if self.keep:
            self.state_file.write_text(json.dumps(state))
            self.state_file.chmod(0o600)

    def settings_text(self) -> dict[str, str]:
        wanted = ("shared_buffers", "max_connections", "fsync", "synchronous_commit", "work_mem")
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name = ANY(%s)",
                (list(wanted),),
            ).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def close(self) -> None:
        if self.keep:
            self.pg.stop()
            return
        self.pg.destroy()
        shutil.rmtree(self.root, ignore_errors=True)


def start(
    cluster_dir: Path | None,
    *,
    durable: bool,
    statements: bool = False,
    bindir: Path | None = None,
) -> BenchCluster:
    """Start (and on first use create) the cluster; bootstrap and migrate the control schema.

    ``statements``: load pg_stat_statements (``--statements``); a kept cluster
    that had it loaded by an earlier run is restarted without it otherwise, so
    its overhead is never in figures that do not ask for it. ``bindir``: the
    server binaries (default: the machine's, as for the tests).
    """
    keep = cluster_dir is not None
    if cluster_dir is not None:
        root = cluster_dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        # The postgres user must traverse to the data directory; we do not
        # loosen permissions outside our own directory, we only say so.
        closed = [p for p in root.parents if not p.stat().st_mode & 0o001]
        if closed:
            raise RuntimeError(
                f"the postgres user cannot reach {root}: {closed[0]} is not world-executable;"
                " choose another --cluster-dir"
            )
    else:
        root = scratch_dir("oneauth-bench-pg-")
    pg = LocalPostgres(root / "pg", fast=not durable, bindir=bindir)
    try:
        pg.start()
        password = _secret(root / "role-password", keep, lambda: secrets.token_urlsafe(18))
        master_key = _secret(root / "master-key", keep, generate_master_key)
        admin = pg.admin_dsn()
        made = bootstrap(
            admin,
            database=DATABASE,
            operator_role=ROLE,
            operator_password=password,
            service_role=SERVICE_ROLE,
            service_password=password,
        )
        dsn = made.operator_dsn
        migrate_all(dsn, parallelism=2)
        statements = _statements(pg, admin, statements)
    except BaseException:
        if not keep:
            pg.destroy()
            shutil.rmtree(root, ignore_errors=True)
        raise
    return BenchCluster(
        pg=pg,
        root=root,
        keep=keep,
        dsn=dsn,
        service_dsn=made.service_dsn,
        admin_dsn=admin,
        master_key=master_key,
        statements=statements,
    )


STATEMENTS_MAX = 100_000  # entries are per (role, statement): ~60 statements x 1,000 app roles


def _statements(pg: LocalPostgres, admin: str, wanted: bool) -> bool:
    """Load (or unload) pg_stat_statements; whether it is loaded now.

    Its settings exist only once the library is preloaded, so loading takes two
    restarts: the library first, then its settings (``max`` is read at start).
    """

    def alter(*commands: str) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            for command in commands:
                conn.execute(command)
        pg.stop()
        pg.start()

    with psycopg.connect(admin, autocommit=True) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
        ).fetchone()
        row = conn.execute(
            "SELECT current_setting('shared_preload_libraries'),"
            " current_setting('pg_stat_statements.track_planning', true) = 'on'"
        ).fetchone()
    loaded = row is not None and "pg_stat_statements" in str(row[0])
    planning = row is not None and bool(row[1])  # false too after a run stopped in between
    if wanted and available is None:
        return False  # reported as missing; the run goes on without
    if wanted and not loaded:
        alter("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    if wanted and not planning:
        alter(
            "ALTER SYSTEM SET pg_stat_statements.track_planning = on",
            f"ALTER SYSTEM SET pg_stat_statements.max = {STATEMENTS_MAX}",
        )
    elif loaded and not wanted:
        alter(
            "ALTER SYSTEM RESET pg_stat_statements.track_planning",
            "ALTER SYSTEM RESET pg_stat_statements.max",
            "ALTER SYSTEM RESET shared_preload_libraries",
        )
    if wanted:
        with psycopg.connect(pg.admin_dsn(DATABASE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return wanted


def _secret(path: Path, keep: bool, make: Callable[[], str]) -> str:
    """A generated secret, remembered in ``path`` only when the cluster is kept."""
    if keep and path.exists():
        return path.read_text().strip()
    value = make()
    if keep:
        path.write_text(value + "\n")
        path.chmod(0o600)
    return value
