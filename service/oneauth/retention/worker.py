"""The retention worker: deletes every app's dead rows in the background (R1-R4).

Runs in the service process (``ONEAUTH_RETENTION``, like the mail worker and the
audit sealer) or apart with ``oneauth retention run``; any number may run. One
cycle runs at a time in the whole installation: the cycle holds a lease in the
control schema (``oneauth.retention.state``: a row, so it works through
PgBouncer in transaction mode, where a session-level advisory lock does not),
and a worker that does not get it skips the cycle (replicas do not duplicate
the work). What is deleted, and how long a
dead row is kept, is in ``oneauth.retention.rules``; audit rows follow the
app's ``audit_retention_days`` through the audit chain's prune (a signed
``prune`` checkpoint first, so ``oneauth audit verify`` passes afterwards).

Bounded: per app and table, at most ``batches_per_visit`` statements of at
most ``batch_size`` rows each, every batch its own short transaction entered
through the router. An app that still had more is due again at the next cycle.

Not entering every schema every cycle. Rows die by the clock, not by writes,
so the statistics counter alone (the mail sweep's trick, ``oneauth.mail.worker``)
is not enough; a visit therefore also records the earliest moment one of the
app's kept rows becomes prunable (one indexed ``min()`` per table). An app is
visited when

* the counter of its prunable tables (rows inserted, ``pg_stat_get_tuples_inserted``,
  readable without any right on them) moved since the last visit: a new row
  may die sooner than what was recorded (an update that makes a row die sooner,
  a revocation, waits for the next insert or the row's expiry: ``rules``);
* its recorded next due time has come;
* its ``audit_retention_days`` differs from the one last applied;
* nothing is recorded of it, unless its counter is zero (nothing was ever
  written to those tables, so there is nothing to delete: a new app).

An idle app costs nothing per cycle but a row of the registry, of
``oneauth.retention_sweep`` and of the statistics query. The counter is read
before the visit (a row inserted during it makes the app due again). After a
statistics reset the recorded counters are not trusted and every app is visited
once (extra visits, never a missed row).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import structlog

from oneauth.apps.models import REGISTRY_COLUMNS, AppRecord, record_from_row
from oneauth.apps.policy import policy_of
from oneauth.apps.registry import Registry
from oneauth.auditchain.sealer import Sealer, SealerConfig
from oneauth.db import lease, templates
from oneauth.db.router import Router
from oneauth.retention import rules, state
from oneauth.secretbox import SecretBox
from oneauth.settings import Settings
from oneauth.tokens.keystore import KeyStore

log = structlog.get_logger("oneauth.retention")

CHUNK = 200  # apps visited between two records of the cycle's progress

# The apps a cycle may have to visit, chosen in the database (an idle cycle at
# 10,000 apps then moves no row to Python): every app when $3 (everything, the
# statistics off or not trusted), else those whose counter moved, whose due
# time came, whose retention days changed, or of which nothing is recorded.
# The retention days as the policy parser reads them (oneauth.apps.policy
# validates them as an integer).
COUNT_SQL = "SELECT count(*) FROM oneauth.apps WHERE status = 'active' AND schema_version >= $1"
CHOICE_SQL = f"""
WITH counters AS ({rules.CHANGES_SQL}),
listed AS (
    SELECT a.app_id, coalesce(c.changes, -1) AS changes,
           CASE WHEN a.settings ->> 'audit_retention_days' ~ '^[0-9]{{1,5}}$'
                THEN (a.settings ->> 'audit_retention_days')::int END AS audit_days
    FROM oneauth.apps a LEFT JOIN counters c ON c.schemaname = a.schema_name
    WHERE a.status = 'active' AND a.schema_version >= $2
)
SELECT l.app_id, l.changes, l.audit_days, s.app_id IS NOT NULL AS recorded
FROM listed l LEFT JOIN oneauth.retention_sweep s ON s.app_id = l.app_id
WHERE $3 OR s.app_id IS NULL OR s.changes <> l.changes
   OR s.audit_days IS DISTINCT FROM l.audit_days OR s.next_due_at <= now()
"""


def retention_schema_version() -> int:
    """The app schema version from which an app has the retention indexes."""
    return next(t.version for t in templates.load("app") if t.name == "retention")


@dataclass
class RetentionConfig:
    interval: float = 300.0
    batch_size: int = 1000
    batches_per_visit: int = 10
    history: timedelta = timedelta(days=7)
    concurrency: int = 2
    # A cycle run by the worker (not ``oneauth retention run --once``) spreads its
    # visits over this share of the interval: at 1,000 apps that wrote, a cycle at
    # full speed is ~28,000 short transactions in under a minute beside those apps'
    # requests (the bench's introspection p99 at 1,000 apps: 139 and 147 ms in the
    # repetitions it overlapped, 25 ms in the one it did not). Each slot pauses at
    # most max_pause after a visit, so a chunk's pauses stay within a quarter of the
    # lease it renews (120 s / 4 x 2 slots / 200 apps).
    spread: float = 0.5
    max_pause: float = 0.3
    # A visit that could delete nothing although a row looked due (an audit row
    # not sealed yet, the newest sealed row): look again after this long, not
    # every cycle.
    stuck_revisit: timedelta = timedelta(hours=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionConfig:
        return cls(
            interval=settings.retention_interval,
            batch_size=settings.retention_batch_size,
            history=timedelta(days=settings.retention_history_days),
        )


@dataclass
class AppReport:
    pruned: dict[str, int] = field(default_factory=dict)
    more: bool = False  # a bound was reached: more rows are waiting
    next_due: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.pruned.values())


@dataclass
class CycleReport:
    leader: bool = True
    apps: int = 0  # active apps considered
    visited: list[str] = field(default_factory=list)
    pruned: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    seconds: float = 0.0

    def add(self, app: AppReport) -> None:
        for name, n in app.pruned.items():
            if n:
                self.pruned[name] = self.pruned.get(name, 0) + n

    def to_json(self) -> dict[str, object]:
        return {
            "leader": self.leader,
            "apps": self.apps,
            "visited": list(self.visited),
            "pruned": dict(sorted(self.pruned.items())),
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        if not self.leader:
            return "another retention worker is running a cycle: skipped"
        done = ", ".join(f"{k} {v}" for k, v in sorted(self.pruned.items())) or "nothing"
        return (
            f"visited {len(self.visited)} of {self.apps} apps in {self.seconds:.2f} s;"
            f" pruned: {done}" + (f"; {self.failed} apps failed" if self.failed else "")
        )


@dataclass
class RetentionWorker:
    settings: Settings
    pool: asyncpg.Pool
    registry: Registry
    router: Router
    keys: KeyStore
    box: SecretBox
    config: RetentionConfig = field(default_factory=RetentionConfig)

    def __post_init__(self) -> None:
        self._rules = rules.rules(self.config.history)
        # This worker's name in the lease (oneauth.db.lease, "retention").
        self._holder = lease.holder_name()
        self._min_version = retention_schema_version()
        self._task: asyncio.Task[None] | None = None
        # Audit rows are pruned by the chain's own procedure, in our bounds.
        self._sealer = Sealer(
            self.settings,
            self.pool,
            self.registry,
            self.router,
            self.keys,
            self.box,
            SealerConfig(
                prune_batch=self.config.batch_size,
                prune_batches_per_visit=self.config.batches_per_visit,
            ),
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        pool: asyncpg.Pool,
        registry: Registry,
        router: Router,
        keys: KeyStore,
        box: SecretBox,
    ) -> RetentionWorker:
        return cls(
            settings, pool, registry, router, keys, box, RetentionConfig.from_settings(settings)
        )

    # --- one app ------------------------------------------------------------------

    async def visit(self, app: AppRecord, now: datetime) -> AppReport:
        """Delete what is dead in one app, within the bounds; when it is due again."""
        report = AppReport()
        size, rounds = self.config.batch_size, self.config.batches_per_visit
        for rule in self._rules:
            done = 0
            for _ in range(rounds):
                async with self.router.enter(app) as conn:
                    n = await rules.prune_batch(conn, rule, now, size)
                done += n
                if n < size:
                    break
            else:
                report.more = True
            report.pruned[rule.name] = done
        days = policy_of(app).audit_retention_days
        if days:
            report.pruned["audit_log"] = await self._prune_audit(app, now, days)
            if report.pruned["audit_log"] >= size * rounds:
                report.more = True
        async with self.router.enter(app) as conn:
            dues = [await rules.next_due(conn, rule) for rule in self._rules]
            if days:
                oldest = await rules.oldest_audit(conn)
                dues.append(None if oldest is None else oldest + timedelta(days=days))
        due = min((d for d in dues if d is not None), default=None)
        if report.more:
            due = now
        elif due is not None and due <= now:
            # Looked due, yet nothing more could go (module doc): not every cycle.
            due = now + self.config.stuck_revisit
        report.next_due = due
        if report.total:
            log.info("retention_pruned", app_id=app.app_id, **report.pruned)
        return report

    async def _prune_audit(self, app: AppRecord, now: datetime, days: int) -> int:
        # Seal first (idempotent, one sealer leads per app): prune takes only sealed
        # rows, and `oneauth retention run` must not depend on a sealer running.
        await self._sealer.seal_app(app)
        return await self._sealer.prune_app(app, now=now)

    # --- one cycle ----------------------------------------------------------------

    async def run_once(self, *, everything: bool = False, paced: bool = False) -> CycleReport:
        """One cycle, if no other worker runs one now (R3). ``everything``: visit
        every active app, whatever the statistics say. ``paced``: spread the visits
        over ``spread`` of the interval (the worker's cycles)."""
        started = time.perf_counter()
        if not await state.try_lead(self.pool, self._holder):
            return CycleReport(leader=False)
        try:
            report = await self._cycle(everything, paced)
        finally:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await state.release(self.pool, self._holder)
        report.seconds = time.perf_counter() - started
        return report

    def _pause(self, visits: int) -> float:
        """Seconds each slot waits after a visit so that ``visits`` take ``spread``."""
        if not visits:
            return 0.0
        share = self.config.interval * self.config.spread * self.config.concurrency / visits
        return min(self.config.max_pause, share)

    async def _cycle(self, everything: bool, paced: bool) -> CycleReport:
        # A control connection per step, not one for the whole cycle: a paced cycle
        # lasts minutes, and the control pool is small (registry misses, sweeps).
        async with self.pool.acquire() as conn:
            now, report, picked = await self._choose(conn, everything)
        pause = self._pause(len(picked)) if paced else 0.0
        limit = asyncio.Semaphore(self.config.concurrency)
        done: dict[str, tuple[int, datetime | None, int | None, bool]] = {}

        async def visit(app: AppRecord, counter: int) -> None:
            try:
                result = await self.visit(app, now)
            except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError):
                return  # not migrated yet, or just deleted
            except (asyncpg.PostgresError, OSError) as exc:
                report.failed += 1
                log.warning("retention_failed", app_id=app.app_id, error=str(exc)[:200])
                return
            report.add(result)
            report.visited.append(app.app_id)
            days = policy_of(app).audit_retention_days
            done[app.app_id] = (counter, result.next_due, days, True)

        async def one(app: AppRecord, counter: int) -> None:
            async with limit:
                await visit(app, counter)
                if pause:
                    await asyncio.sleep(pause)

        # In chunks, each recorded once visited: a long cycle interrupted by a
        # restart keeps its progress.
        for start in range(0, len(picked), CHUNK):
            await asyncio.gather(*(one(a, c) for a, c in picked[start : start + CHUNK]))
            more = start + CHUNK < len(picked)
            async with self.pool.acquire() as conn:
                await state.save(conn, done)
                done.clear()
                renewed = not more or await state.renew(conn, self._holder)
            if not renewed:
                # The lease ran out and another worker leads now: leave it the rest.
                log.warning("retention_lease_lost", visited=len(report.visited))
                break
        return report

    async def _choose(
        self, conn: asyncpg.Connection, everything: bool
    ) -> tuple[datetime, CycleReport, list[tuple[AppRecord, int]]]:
        """The cycle's clock, its report so far and the apps it visits (shuffled)."""
        now: datetime = await conn.fetchval("SELECT now()")
        counting = bool(await conn.fetchval("SELECT current_setting('track_counts')::bool"))
        trusted = await state.trusted(conn)
        async with conn.transaction():
            # One statistics snapshot read at once instead of a shared-memory lookup
            # per table (15 per app).
            await conn.execute("SET LOCAL stats_fetch_consistency = 'snapshot'")
            rows = await conn.fetch(
                CHOICE_SQL,
                list(rules.TABLES),
                self._min_version,
                everything or not counting or not trusted,
            )
        report = CycleReport(apps=int(await conn.fetchval(COUNT_SQL, self._min_version)))
        chosen: dict[str, int] = {}
        quiet: dict[str, tuple[int, datetime | None, int | None, bool]] = {}
        for row in rows:
            counter, days = int(row["changes"]), row["audit_days"]
            fresh = not row["recorded"] and trusted and counting and not everything
            if fresh and counter <= 0 and not days:
                quiet[row["app_id"]] = (counter, None, None, False)  # nothing ever written
                continue
            chosen[row["app_id"]] = counter
        await state.save(conn, quiet)
        picked: list[tuple[AppRecord, int]] = []
        if chosen:
            rows = await conn.fetch(
                f"SELECT {REGISTRY_COLUMNS} FROM oneauth.apps WHERE app_id = ANY($1::text[])"
                " AND status = 'active'",
                list(chosen),
            )
            picked = [(record_from_row(r), chosen[r["app_id"]]) for r in rows]
        random.shuffle(picked)
        return now, report, picked

    # --- running ------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever(), name="oneauth-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_forever(self) -> None:
        while True:
            try:
                report = await self.run_once(paced=True)
                if report.visited:
                    log.info("retention_cycle", summary=report.summary())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: try again next cycle
                log.warning("retention_error", error=type(exc).__name__)
            await asyncio.sleep(self.config.interval)
