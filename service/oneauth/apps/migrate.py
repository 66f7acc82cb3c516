"""Migrate the control schema, then every app schema, a bounded number at a time.

Each app schema migrates in its own transaction under its own advisory lock, so
a failure in one leaves the others alone and a re-run resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg_pool

from oneauth.apps import dek, lifecycle
from oneauth.db import ops
from oneauth.settings import Settings


@dataclass
class AppOutcome:
    app_id: str
    applied: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class MigrateSummary:
    control_applied: list[str]
    outcomes: list[AppOutcome]
    seconds: float

    @property
    def failed(self) -> list[AppOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def changed(self) -> list[AppOutcome]:
        return [o for o in self.outcomes if o.applied]


def migrate_all(
    dsn: str,
    *,
    settings: Settings | None = None,
    parallelism: int = 4,
    sql_root: Path | None = None,
    progress: Callable[[int, int, AppOutcome], None] | None = None,
) -> MigrateSummary:
    started = time.perf_counter()
    with ops.connect(dsn) as conn:
        control = ops.migrate_control(conn, sql_root)
        apps = [a.app_id for a in lifecycle.list_apps(conn)]
    total = len(apps)
    outcomes: list[AppOutcome] = []
    if total:
        workers = max(1, min(parallelism, total))
        with psycopg_pool.ConnectionPool(
            dsn,
            min_size=workers,
            max_size=workers,
            kwargs={"autocommit": True, "application_name": "oneauth-migrate"},
            open=True,
        ) as pool:

            def one(app_id: str) -> AppOutcome:
                outcome = AppOutcome(app_id)
                try:
                    with pool.connection() as conn:
                        outcome.applied = _migrate_app(conn, app_id, sql_root, settings)
                except Exception as exc:
                    outcome.error = str(exc).strip() or type(exc).__name__
                return outcome

            with ThreadPoolExecutor(max_workers=workers) as executor:
                for n, outcome in enumerate(executor.map(one, apps), start=1):
                    outcomes.append(outcome)
                    if progress is not None:
                        progress(n, total, outcome)
    return MigrateSummary(control.applied, outcomes, time.perf_counter() - started)


def _migrate_app(
    conn: lifecycle.Conn, app_id: str, sql_root: Path | None, settings: Settings | None
) -> list[str]:
    with conn.transaction():
        ops.advisory_lock(conn, f"app:{app_id}")
        record = lifecycle.get(conn, app_id, for_update=True)
        if record is None or record.status == "deleted":
            return []
        names = record.names
        if settings is not None:
            # An app from before per-app data keys gets one (K1); the hooks
            # below then seal with it. Legacy values move with `apps reseal`.
            _, created = dek.ensure(conn, dek.KeyRing.from_config(settings.master_key), app_id)
            if created:
                record = lifecycle.get(conn, app_id)
                assert record is not None
        with ops.app_context(conn, names):
            result = ops.apply_templates(conn, "app", names.schema, sql_root)
            if settings is not None:
                # Seed what this release expects every app to have (idempotent hooks).
                for hook in lifecycle.default_hooks():
                    hook(conn, record, settings)
        # The registry's schema_version is what readiness and the gate trust: keep
        # it equal to the ledger even when nothing was applied (a registry row
        # written by an older release, or by hand, may lag behind).
        if result.applied or result.version != record.schema_version:
            conn.execute(
                "UPDATE oneauth.apps SET schema_version = %s, updated_at = now() WHERE app_id = %s",
                (result.version, app_id),
            )
    return result.applied
