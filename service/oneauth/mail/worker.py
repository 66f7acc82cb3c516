"""The delivery worker: claims outbox rows of every app and sends them.

Runs in the service process by default (started in the ASGI lifespan) or apart
with ``oneauth worker``; any number of workers may run, since claims use
``FOR UPDATE SKIP LOCKED`` and a lease.

Finding work across apps without scanning every schema every tick. Each app's
outbox lives in its own schema, readable only by that app's role (B2), so the
worker learns *which* apps have mail in two ways:

* ``NOTIFY oneauth_outbox, '<app_id>'`` sent in the transaction that queued the
  message (delivered at commit): the worker wakes at once and visits that app.
* A slow sweep (``ONEAUTH_EMAIL_SWEEP_INTERVAL``) over the active apps in the
  registry catches what a notice cannot: messages queued while no worker
  listened, retries of a previous process, lost connections. It does not
  enter every schema: Postgres counts the rows inserted, updated and deleted
  in each outbox table (``pg_stat_all_tables``, readable without any right on
  the table), so the sweep visits only apps whose counter moved since it was
  last read before a visit, and apps with a retry due. Entering 10,000
  schemas every 30 s per process had cost more than the request traffic of
  1,000 active apps (and evicted the request connections' catalog caches).
  With ``track_counts`` off, every app is visited.

What a sweep learned (each visited app's counter and its next retry) is kept
in ``oneauth.mail_sweep``, shared by all workers and read by every sweep (the
retries once, at a worker's start): a deploy's new processes do not each enter
every schema (at 10,000
apps that first sweep had pegged Postgres for minutes, and sign-ins with it).
Statistics restart from zero after a crash; the table's own write counter
then reads zero too, and the saved counters are ignored (every app is
visited once), so the state can cause extra visits but never skip mail.

After visiting an app the worker remembers when its next retry is due. We chose
this over a hint table in the control schema because app roles would then
need a write path into ``oneauth`` (a grant or a SECURITY DEFINER function);
with NOTIFY an app role gains nothing, and a forged notice only makes a worker
look into an app that has nothing due.

Delivery is at-least-once. A row is claimed (status ``sending``, attempts + 1,
a lease) and committed before any SMTP traffic, then marked ``sent`` right
after the server's final reply. A crash between the two leaves the row leased;
when the lease ends another worker sends it again *with the same Message-ID*
(``compose``), so the duplicate is recognisable. Transient failures retry with
exponential backoff and jitter; 5xx replies and exhausted attempts dead-letter
the row; a row whose link expired is never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import ClassVar

import asyncpg
import structlog

from oneauth import audit
from oneauth.apps.models import REGISTRY_COLUMNS, AppRecord, record_from_row
from oneauth.apps.registry import Registry
from oneauth.db import templates
from oneauth.db.router import Router
from oneauth.mail import backends, outbox
from oneauth.mail.compose import Composer
from oneauth.mail.render import Renderer, RenderError
from oneauth.secretbox import SecretBox, SecretBoxError
from oneauth.settings import Settings

log = structlog.get_logger("oneauth.mail")


def outbox_schema_version() -> int:
    """The app schema version from which an app has an outbox table."""
    return next(t.version for t in templates.load("app") if t.name == "outbox")


SWEEP_CHUNK = 200  # apps visited between two records of the sweep's progress


@dataclass(frozen=True)
class SweepSql:
    """The sweep's queries for one outbox-like table and the control table keeping
    its state (``oneauth.mail_sweep`` for mail; the webhook worker has its own)."""

    table: str
    state: str

    @property
    def changes(self) -> str:
        # Rows ever inserted, updated or deleted in each app's table (statistics of
        # the cumulative stats system, flushed by the writing backend within about a
        # second). (pg_stat_all_tables would do; its grouping doubles the cost: 55 vs
        # 24 ms at 10,000 apps.)
        return (
            "SELECT n.nspname AS schemaname, pg_stat_get_tuples_inserted(c.oid)"
            " + pg_stat_get_tuples_updated(c.oid) + pg_stat_get_tuples_deleted(c.oid) AS changes"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            f" WHERE c.relname = '{self.table}' AND c.relkind IN ('r', 'p')"
        )

    @property
    def recorded(self) -> str:
        return f"SELECT app_id, changes FROM {self.state}"

    @property
    def recorded_of(self) -> str:
        return f"SELECT app_id, changes FROM {self.state} WHERE app_id = ANY($1::text[])"

    @property
    def retries(self) -> str:
        return (
            f"SELECT app_id, next_due_at - now() AS wait FROM {self.state}"
            " WHERE next_due_at IS NOT NULL"
        )

    @property
    def state_writes(self) -> str:
        # Every save moves this table's own counter, and only a statistics reset (a
        # crash, pg_stat_reset) brings it back to zero: then the saved counters are
        # from another epoch and are not trusted.
        return (
            "SELECT pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_tuples_updated(c.oid)"
            f" FROM pg_class c WHERE c.oid = '{self.state}'::regclass"
        )

    @property
    def save_state(self) -> str:
        return (
            f"INSERT INTO {self.state} AS s (app_id, changes, next_due_at)"
            " SELECT a, c, now() + make_interval(secs => w)"
            " FROM unnest($1::text[], $2::bigint[], $3::float8[]) AS t (a, c, w)"
            " WHERE EXISTS (SELECT FROM oneauth.apps WHERE app_id = t.a)"
            " ON CONFLICT (app_id) DO UPDATE SET changes = excluded.changes,"
            " next_due_at = excluded.next_due_at, updated_at = now()"
        )


MAIL_SWEEP = SweepSql("outbox", "oneauth.mail_sweep")


@dataclass
class Report:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    expired: int = 0
    next_due: float | None = None  # seconds until this app has work again

    def add(self, other: Report) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.expired += other.expired


@dataclass
class WorkerConfig:
    batch_size: int = 50
    concurrency: int = 4  # apps delivered at once
    backoff_base: float = 30.0
    backoff_cap: float = 3600.0
    sweep_interval: float = 30.0
    lease_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        # The lease must outlast one whole SMTP exchange (connect + send + quit).
        return cls(
            sweep_interval=settings.email_sweep_interval,
            lease_seconds=max(60.0, 4 * settings.smtp_timeout),
        )


class AppSweeper:
    """Finding and visiting the apps that have work (the module doc): waking on
    NOTIFY, the statistics-based sweep and its shared state, retries due.

    Shared by the mail worker below and the webhook worker
    (``oneauth.webhooks.worker``); a subclass names its table and state
    (``sweep_sql``), its schema version and how to deliver one app.
    """

    settings: Settings
    pool: asyncpg.Pool
    registry: Registry
    router: Router
    config: WorkerConfig

    sweep_sql: ClassVar[SweepSql] = MAIL_SWEEP
    task_name: ClassVar[str] = "oneauth-mail-worker"
    error_event: ClassVar[str] = "mail_worker_error"

    def _init_wakeup(self) -> None:
        self._wake = asyncio.Event()
        self._dirty: set[str] = set()
        self._sweep_requested = True
        self._due: dict[str, float] = {}
        self._retries_loaded = False
        self._task: asyncio.Task[None] | None = None
        self._min_version = self.min_schema_version()

    def min_schema_version(self) -> int:
        raise NotImplementedError

    # --- waking -------------------------------------------------------------------

    def on_notify(self, app_id: str | None) -> None:
        """Notifier subscriber: one app has mail, or (None) notices may have been lost."""
        if app_id is None:
            self._sweep_requested = True
        else:
            self._dirty.add(app_id)
        self._wake.set()

    # --- running ------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_forever(self) -> None:
        next_sweep = 0.0
        while True:
            now = time.monotonic()
            # Take the work list and clear the event in one step (no await in
            # between), so a notice arriving while we deliver is not lost.
            dirty, self._dirty = self._dirty, set()
            self._wake.clear()
            due = {a for a, t in self._due.items() if t <= now}
            try:
                if self._sweep_requested or now >= next_sweep:
                    self._sweep_requested = False
                    next_sweep = now + self.config.sweep_interval
                    await self.sweep(dirty | due)
                else:
                    await self.deliver_apps(await self._lookup(dirty | due))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: try again shortly
                log.warning(self.error_event, error=type(exc).__name__)
                await asyncio.sleep(1.0)
                self._sweep_requested = True
                continue
            wake_at = min([next_sweep, *self._due.values()])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, wake_at - time.monotonic()))

    async def active_apps(self) -> list[AppRecord]:
        rows = await self.pool.fetch(
            f"SELECT {REGISTRY_COLUMNS} FROM oneauth.apps"
            " WHERE status = 'active' AND schema_version >= $1 ORDER BY app_id",
            self._min_version,
        )
        return [record_from_row(r) for r in rows]

    async def sweep(self, wanted: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Visit the apps that may have mail (see the module doc); their ids.

        In chunks, each recorded in ``oneauth.mail_sweep`` once visited: a long
        sweep (thousands of never-seen apps) interrupted by a restart keeps its
        progress, and workers sweeping at once (the processes of one deploy),
        each in its own random order, skip the apps another has just visited.
        """
        if not self._retries_loaded:
            await self._load_retries()
        apps, looked, trusted = await self.sweep_candidates(wanted)
        random.shuffle(apps)
        visited: list[str] = []
        for start in range(0, len(apps), SWEEP_CHUNK):
            chunk = apps[start : start + SWEEP_CHUNK]
            if start and trusted:
                chunk = await self._not_visited_since(chunk, looked, wanted)
            await self.deliver_apps(chunk)
            await self._record({a.app_id: looked[a.app_id] for a in chunk if a.app_id in looked})
            visited.extend(a.app_id for a in chunk)
        return visited

    async def sweep_candidates(
        self, wanted: set[str] | frozenset[str]
    ) -> tuple[list[AppRecord], dict[str, int], bool]:
        """The active apps a sweep must visit, their outbox counters as read now,
        and whether the recorded counters were trusted.

        An app is visited when its counter differs from the one recorded before
        the last visit (new, claimed or retried mail, by anyone), when it is in
        ``wanted`` (notified or due), or when no visit is recorded. The caller
        records the counters once the visits are done.
        """
        apps = await self.active_apps()
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT current_setting('track_counts')::bool"):
                return apps, {}, False
            changes = {
                r["schemaname"]: r["changes"] for r in await conn.fetch(self.sweep_sql.changes)
            }
            # Rows recorded but no writes counted: the statistics were reset
            # since, and the recorded counters belong to another epoch.
            trusted = bool(await conn.fetchval(self.sweep_sql.state_writes))
            recorded = {
                r["app_id"]: r["changes"] for r in await conn.fetch(self.sweep_sql.recorded)
            }
        if not trusted:
            recorded = {}
        picked: list[AppRecord] = []
        looked: dict[str, int] = {}
        for app in apps:
            current = changes.get(app.names.schema, -1)
            if app.app_id in wanted or recorded.get(app.app_id) != current:
                picked.append(app)
                looked[app.app_id] = current
        return picked, looked, trusted

    async def _not_visited_since(
        self, apps: list[AppRecord], looked: dict[str, int], wanted: set[str] | frozenset[str]
    ) -> list[AppRecord]:
        """Drop the apps whose recorded counter became the one this sweep read:
        another worker visited them since the sweep began."""
        rows = await self.pool.fetch(self.sweep_sql.recorded_of, [a.app_id for a in apps])
        recorded = {r["app_id"]: r["changes"] for r in rows}
        return [
            a
            for a in apps
            if a.app_id in wanted
            or a.app_id not in looked
            or recorded.get(a.app_id) != looked[a.app_id]
        ]

    async def _load_retries(self) -> None:
        """Adopt the retries earlier workers left waiting (oneauth.mail_sweep)."""
        now = time.monotonic()
        for r in await self.pool.fetch(self.sweep_sql.retries):
            self._due.setdefault(r["app_id"], now + max(0.0, r["wait"].total_seconds()))
        self._retries_loaded = True

    async def _record(self, looked: dict[str, int]) -> None:
        """Record the visited apps' counters (read before the visit) and next retries."""
        if not looked:
            return
        now = time.monotonic()
        ids = sorted(looked)
        waits = [None if self._due.get(a) is None else max(0.0, self._due[a] - now) for a in ids]
        await self.pool.execute(self.sweep_sql.save_state, ids, [looked[a] for a in ids], waits)

    async def _lookup(self, app_ids: set[str]) -> list[AppRecord]:
        found = []
        for app_id in sorted(app_ids):
            record = await self.registry.get(app_id)  # validates forged ids too
            if record is not None and record.is_active:
                found.append(record)
            else:
                self._due.pop(app_id, None)
        return found

    async def deliver_apps(self, apps: list[AppRecord]) -> Report:
        total = Report()
        limit = asyncio.Semaphore(self.config.concurrency)

        async def one(app: AppRecord) -> None:
            async with limit:
                try:
                    report = await self.deliver_app(app)
                except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError):
                    return  # not migrated yet, or just deleted
                total.add(report)

        await asyncio.gather(*(one(a) for a in apps if a.schema_version >= self._min_version))
        return total

    async def deliver_all(self) -> Report:
        """Everything due now in every app (``oneauth worker --once``, tests)."""
        return await self.deliver_apps(await self.active_apps())

    async def deliver_app(self, app: AppRecord) -> Report:
        raise NotImplementedError

    def _backoff(self, attempts: int) -> float:
        growth = float(2 ** max(0, min(attempts - 1, 30)))
        delay = min(self.config.backoff_cap, self.config.backoff_base * growth)
        return delay * random.uniform(0.8, 1.2)  # jitter: retries of many rows spread out


@dataclass
class DeliveryWorker(AppSweeper):
    settings: Settings
    pool: asyncpg.Pool
    registry: Registry
    router: Router
    box: SecretBox
    backend: backends.Backend
    config: WorkerConfig = field(default_factory=WorkerConfig)

    def __post_init__(self) -> None:
        self._init_wakeup()
        self.composer = Composer(self.settings, Renderer(self.settings.email_templates_dir or None))

    def min_schema_version(self) -> int:
        return outbox_schema_version()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        pool: asyncpg.Pool,
        registry: Registry,
        router: Router,
        box: SecretBox,
    ) -> DeliveryWorker:
        return cls(
            settings,
            pool,
            registry,
            router,
            box,
            backends.from_settings(settings),
            WorkerConfig.from_settings(settings),
        )

    # --- one app ------------------------------------------------------------------

    async def deliver_app(self, app: AppRecord) -> Report:
        """Send what is due in one app, batch after batch, until nothing is due."""
        report = Report()
        while True:
            claim_id = uuid.uuid4()
            async with self.router.enter(app) as conn:
                retired = await outbox.retire(conn)
                if retired:
                    await conn.executemany(
                        audit.INSERT_SQL,
                        [
                            audit.row(
                                "email.delivery",
                                "failure",
                                audit.SYSTEM,
                                actor_type="system",
                                actor_id="mail-worker",
                                target_type="outbox",
                                target_id=str(r["id"]),
                                details={"kind": r["kind"], "status": r["status"]},
                            )
                            for r in retired
                        ],
                    )
                rows = await outbox.claim(
                    conn,
                    limit=self.config.batch_size,
                    lease_seconds=self.config.lease_seconds,
                    claim_id=claim_id,
                )
            for r in retired:
                if r["status"] == "expired":
                    report.expired += 1
                else:
                    report.dead += 1
            if rows:
                await self._send_batch(app, rows, report)
            if len(rows) < self.config.batch_size:
                break
        async with self.router.enter(app) as conn:
            report.next_due = await outbox.seconds_until_due(conn)
        if report.next_due is None:
            self._due.pop(app.app_id, None)
        else:
            self._due[app.app_id] = time.monotonic() + report.next_due
        return report

    async def _send_batch(self, app: AppRecord, rows: list[outbox.Claimed], report: Report) -> None:
        async with self.backend.session() as sender:
            for row in rows:
                try:
                    secrets = (
                        outbox.open_sealed(
                            self.box, app.app_id, row.kind, row.recipient, row.secrets_sealed
                        )
                        if row.secrets_sealed
                        else {}
                    )
                    composed = self.composer.compose(app, row, secrets)
                    await sender.send(
                        composed.message, sender=composed.sender, recipient=composed.recipient
                    )
                except (RenderError, SecretBoxError, backends.PermanentFailure) as exc:
                    await self._failed(app, row, str(exc) or type(exc).__name__, None, report)
                    continue
                except backends.TransientFailure as exc:
                    await self._failed(app, row, str(exc), self._backoff(row.attempts), report)
                    continue
                # Mark right away, one row at a time: the window in which a crash
                # would make us send this message again stays one message wide.
                async with self.router.enter(app) as conn:
                    await outbox.mark_sent(conn, [row.id])
                report.sent += 1

    async def _failed(
        self,
        app: AppRecord,
        row: outbox.Claimed,
        error: str,
        retry_in: float | None,
        report: Report,
    ) -> None:
        async with self.router.enter(app) as conn:
            status = await outbox.mark_failed(
                conn, row.id, row.claim_id, error=error, retry_in=retry_in
            )
            if status == "dead":
                await audit.record(
                    conn,
                    "email.delivery",
                    "failure",
                    audit.SYSTEM,
                    actor_type="system",
                    actor_id="mail-worker",
                    target_type="outbox",
                    target_id=str(row.id),
                    details={"kind": row.kind, "status": "dead", "attempts": row.attempts},
                )
        log.warning(
            "mail_delivery_failed",
            app_id=app.app_id,
            outbox_id=row.id,
            kind=row.kind,
            attempt=row.attempts,
            status=status,
            error=error[:200],
        )
        if status == "dead":
            report.dead += 1
        elif status == "pending":
            report.retried += 1
