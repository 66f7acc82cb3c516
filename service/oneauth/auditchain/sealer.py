"""The sealer: links each app's committed audit rows into its hash chain (A2).

Runs in the service process (like the mail worker, ``ONEAUTH_AUDIT_SEALER``) or
in ``oneauth worker``; any number may run. Their rounds take turns under one
lease per installation (``oneauth.db.lease``, "audit_sealer"): the holder sweeps,
the others only try the lease each interval, and take over when it is released
(a clean stop) or has expired (a holder that died). Every worker sweeping every
app whose counter moved made one visit per worker for each app that wrote a row:
with 1,000 apps active, most of the Postgres work of a sign-in. Per app, one
visit leads at a time in any case (``pg_try_advisory_xact_lock`` in the visit's
transaction), so a round that outlives its lease beside the next holder's only
repeats work.

The hot path is untouched: ``audit.record`` stays one INSERT in the caller's
transaction, with no lock, no chain read, no trigger. The sealer links rows
afterwards, in id order, which is not commit order: a transaction may draw id
41, stay open, and commit after 42 and 43 did. Sealing 42 before 41 commits
would leave 41 out of the chain for good, so the sealer seals only up to a
*safe horizon*: an id at or below which no row can still appear.

The horizon. Every INSERT into audit_log takes ROW EXCLUSIVE on the table
before it draws its id from the sequence, and keeps it until its transaction
has ended and become visible to new snapshots. A visit reads (1) the
sequence's last value L (every id <= L has been handed out) and then (2) the
set W of transactions holding that lock (``pg_locks``, which shows every
backend's locks whatever its role). If W is empty, no id <= L can still
commit: the horizon is L. Otherwise the observation (L, W) is kept; a later
visit that finds none of W's transactions still holding the lock knows every
id <= L is settled (committed and visible, or rolled back for good), and takes
L as the horizon. Observations are kept in time order, so the settled ones are
a prefix. A transaction that holds an audit row open therefore stops the
horizon below its id, and rows committed after it with larger ids wait; when
it commits, the next visits seal it in its place (tests/audit:
``test_a_late_commit_is_sealed_in_its_place``). The sequence must not cache
ids per backend (0017 sets CACHE 1). An id that rolled back leaves a gap,
which is fine: the chain links consecutive *sealed* rows.

Finding apps to visit without entering every schema: Postgres counts the
rows inserted into each audit_log (``pg_stat_get_tuples_inserted``, readable
without rights on the table, counted when the inserting transaction ends).
An app is visited when its counter moved since its last complete visit, when
its checkpoint or retention run is due, or when nothing is known of it. What a
visit learned is kept in ``oneauth.audit_sweep`` (as ``oneauth.mail_sweep``),
so restarts do not visit every app again; after a statistics reset every app
is visited once. With ``track_counts`` off, every app is visited.

Checkpoints: after the head moves, a checkpoint (the head signed with the app's
signing key, ``checkpoints``) is due within ``ONEAUTH_AUDIT_CHECKPOINT_INTERVAL``;
one is also taken before every retention prune (kind ``prune``).

Retention (``audit_retention_days``): the oldest rows are pruned in bounded
batches: a batch is the longest prefix of at most ``prune_batch`` rows that are
older than the retention, sealed, and below the newest sealed row; a ``prune``
checkpoint of the head at its last row is signed and stored first, then
``audit_prune`` (sql/app/0017) deletes the rows and their chain entries. A
crash between the two leaves rows that a checkpoint says are pruned: verify
checks them as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from oneauth.apps.models import REGISTRY_COLUMNS, AppRecord, record_from_row
from oneauth.apps.policy import policy_of
from oneauth.apps.registry import Registry
from oneauth.auditchain import checkpoints, repo
from oneauth.auditchain.chain import genesis, link
from oneauth.db import lease, templates
from oneauth.db.router import Router
from oneauth.secretbox import SecretBox
from oneauth.settings import Settings
from oneauth.tokens.keystore import KeyStore

log = structlog.get_logger("oneauth.audit")

MAX_OBSERVATIONS = 64
SWEEP_CHUNK = 200  # apps visited between two records of the sweep's progress
LEASE = "audit_sealer"


def chain_schema_version() -> int:
    """The app schema version from which an app has an audit_chain table."""
    return next(t.version for t in templates.load("app") if t.name == "audit_chain")


@dataclass
class SealerConfig:
    interval: float = 5.0
    batch_size: int = 1000
    max_rows_per_visit: int = 20_000
    checkpoint_interval: float = 3600.0
    prune_interval: float = 3600.0
    prune_batch: int = 5000
    prune_batches_per_visit: int = 20
    concurrency: int = 4
    # How long a round's lease holds without renewal (renewed every round and
    # every SWEEP_CHUNK apps): how long rows wait when its holder dies.
    lease_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SealerConfig:
        return cls(
            interval=settings.audit_seal_interval,
            checkpoint_interval=settings.audit_checkpoint_interval,
            lease_seconds=max(60.0, 6 * settings.audit_seal_interval),
        )


@dataclass
class Visit:
    leader: bool = True
    sealed: int = 0
    complete: bool = False  # no committed row is left above the head
    head_id: int = 0


@dataclass
class _Horizon:
    settled: int = 0
    pending: deque[tuple[int, frozenset[str]]] = field(default_factory=deque)

    def advance(self, allocated: int, writers: frozenset[str]) -> int:
        while self.pending and not (self.pending[0][1] & writers):
            self.settled = max(self.settled, self.pending.popleft()[0])
        if not writers:
            self.settled = max(self.settled, allocated)
            self.pending.clear()
        elif allocated > self.settled:
            if len(self.pending) >= MAX_OBSERVATIONS:
                # A newer observation stands for the last one: every writer of the
                # older that still runs is in the newer set too.
                self.pending.pop()
            self.pending.append((allocated, writers))
        return self.settled


@dataclass
class Sealer:
    settings: Settings
    pool: asyncpg.Pool
    registry: Registry
    router: Router
    keys: KeyStore
    box: SecretBox
    config: SealerConfig = field(default_factory=SealerConfig)

    def __post_init__(self) -> None:
        self._horizons: dict[str, _Horizon] = {}
        self._seen: dict[str, int] = {}
        self._checkpoint_due: dict[str, float] = {}
        self._prune_due: dict[str, float] = {}
        self._state_loaded = False
        self._task: asyncio.Task[None] | None = None
        self._min_version = chain_schema_version()
        self._holder = lease.holder_name()
        self._leading = False  # holds the round's lease (run_forever)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        pool: asyncpg.Pool,
        registry: Registry,
        router: Router,
        keys: KeyStore,
        box: SecretBox,
    ) -> Sealer:
        return cls(
            settings, pool, registry, router, keys, box, SealerConfig.from_settings(settings)
        )

    # --- one app ------------------------------------------------------------------

    async def seal_app(self, app: AppRecord) -> Visit:
        """Seal what is safe to seal now, as this app's leader (else nothing).

        One transaction, READ COMMITTED by name: each statement takes its own
        snapshot when it starts, so the rows are read in a snapshot taken after
        the writers were read (the horizon's premise, module doc). Under the
        server's default isolation, if that were REPEATABLE READ, the first
        statement's snapshot would serve them all and could miss a row that
        committed in between; this used to take a transaction of its own for the
        observation, which at 1,000 active apps was a third of the sealer's round
        trips (measured).
        """
        visit = Visit()
        async with self.router.enter(app, read_committed=True) as conn:
            if not await repo.try_lead(conn, app.app_id):
                return Visit(leader=False)
            # Order matters: the sequence first, then the writers (module doc).
            allocated = await repo.allocated(conn)
            writers = await repo.writers(conn)
            horizon = self._horizons.setdefault(app.app_id, _Horizon())
            safe = horizon.advance(allocated, writers)
            current = await repo.head(conn)
            head_id, prev = current if current else (0, genesis(app.app_id))
            batch = self.config.batch_size
            while visit.sealed < self.config.max_rows_per_visit:
                # One row more than a batch, past the horizon too: what follows the
                # batch tells whether the visit is complete (no row left above the
                # head), without a query of its own.
                rows = await repo.log_after(conn, head_id, batch + 1)
                ready = [row for row in rows[:batch] if row["id"] <= safe]
                if ready:
                    sealed = link(prev, ready)
                    await repo.insert_chain(conn, sealed)
                    visit.sealed += len(sealed)
                    head_id, prev = sealed[-1][0], sealed[-1][2]
                if len(ready) == len(rows):
                    visit.complete = True  # all of them sealed, none after
                    break
                if len(ready) < batch:
                    break  # the rest is above the horizon
            visit.head_id = head_id
        if visit.sealed:
            log.debug("audit_sealed", app_id=app.app_id, rows=visit.sealed, head=head_id)
        return visit

    async def checkpoint(
        self,
        app: AppRecord,
        *,
        kind: str = "periodic",
        at: tuple[int, bytes] | None = None,
        pruned_through: int | None = None,
    ) -> checkpoints.Draft | None:
        """Sign the chain head (or ``at``) and store it; None when nothing moved since."""
        async with self.router.enter(app) as conn:
            if at is None:
                at = await repo.head(conn)
                if at is None:
                    return None
            keys = await self.keys.get(app, conn)
            key = keys.signer(policy_of(app).signing_alg)
        async with self.pool.acquire() as control:
            last = await repo.last_checkpoint(control, app.app_id)
            if (
                last is not None
                and kind == "periodic"
                and int(last["audit_id"]) == at[0]
                and bytes(last["row_hash"]) == at[1]
            ):
                return None
            draft = checkpoints.sign(
                key,
                self.box,
                app_id=app.app_id,
                issuer=self.settings.issuer_for(app.app_id),
                seq=1 if last is None else int(last["seq"]) + 1,
                kind=kind,
                audit_id=at[0],
                row_hash=at[1],
                pruned_through=pruned_through,
                prev_jws=None if last is None else str(last["jws"]),
            )
            await repo.insert_checkpoint(control, draft)
        log.info("audit_checkpoint", app_id=app.app_id, seq=draft.seq, kind=kind, head=at[0])
        return draft

    async def prune_app(self, app: AppRecord, *, now: datetime | None = None) -> int:
        """Apply the app's retention, batch by batch; the number of audit rows pruned."""
        days = policy_of(app).audit_retention_days
        if not days:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        total = 0
        for _ in range(self.config.prune_batches_per_visit):
            async with self.router.enter(app) as conn:
                if not await repo.try_lead(conn, app.app_id):
                    return total
                current = await repo.head(conn)
                if current is None:
                    return total
                through = None
                for audit_id, occurred_at in await repo.oldest(conn, self.config.prune_batch):
                    if occurred_at >= cutoff or audit_id >= current[0]:
                        break
                    through = audit_id
                if through is None:
                    return total
                at = await repo.chain_hash(conn, through)
            if at is None:  # an unsealed row below the head: verify will name it
                log.warning("audit_prune_unsealed", app_id=app.app_id, audit_id=through)
                return total
            # Signed first: once the rows are gone, verification starts from it.
            await self.checkpoint(app, kind="prune", at=(through, at), pruned_through=through)
            async with self.router.enter(app) as conn:
                if not await repo.try_lead(conn, app.app_id):
                    return total
                total += await repo.prune(conn, through, cutoff)
        return total

    # --- every app ----------------------------------------------------------------

    async def active_apps(self) -> list[AppRecord]:
        rows = await self.pool.fetch(
            f"SELECT {REGISTRY_COLUMNS} FROM oneauth.apps"
            " WHERE status = 'active' AND schema_version >= $1 ORDER BY app_id",
            self._min_version,
        )
        return [record_from_row(r) for r in rows]

    async def _load_state(self) -> None:
        async with self.pool.acquire() as conn:
            rows, trusted = await repo.sweep_state(conn)
        now = time.monotonic()
        for r in rows:
            if trusted:
                self._seen.setdefault(r["app_id"], int(r["inserts"]))
            if r["checkpoint_wait"] is not None:
                wait = max(0.0, r["checkpoint_wait"].total_seconds())
                self._checkpoint_due.setdefault(r["app_id"], now + wait)
            if r["prune_wait"] is not None:
                self._prune_due.setdefault(
                    r["app_id"], now + max(0.0, r["prune_wait"].total_seconds())
                )
        self._state_loaded = True

    async def sweep(self) -> list[str]:
        """One round over the apps that need it; the ids visited."""
        if not self._state_loaded:
            await self._load_state()
        apps = await self.active_apps()
        async with self.pool.acquire() as conn:
            counting = await conn.fetchval("SELECT current_setting('track_counts')::bool")
            counters = (
                {r["schemaname"]: int(r["inserts"]) for r in await conn.fetch(repo.AUDIT_INSERTS)}
                if counting
                else {}
            )
        now = time.monotonic()
        picked: list[tuple[AppRecord, int]] = []
        for app in apps:
            counter = counters.get(app.names.schema, -1)
            due = min(
                self._checkpoint_due.get(app.app_id, float("inf")),
                self._prune_due.get(app.app_id, float("inf")),
            )
            retention = bool(policy_of(app).audit_retention_days)
            if (
                not counting
                or self._seen.get(app.app_id) != counter
                or due <= now
                or (retention and app.app_id not in self._prune_due)
            ):
                picked.append((app, counter))
        random.shuffle(picked)
        limit = asyncio.Semaphore(self.config.concurrency)
        changed: dict[str, tuple[int, float | None, float | None]] = {}

        async def one(app: AppRecord, counter: int) -> None:
            async with limit:
                try:
                    await self._visit(app, counter)
                except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError):
                    return  # not migrated yet, or just deleted
                except asyncpg.PostgresError as exc:
                    log.warning("audit_seal_failed", app_id=app.app_id, error=str(exc)[:200])
                    return
                t = time.monotonic()
                ckpt = self._checkpoint_due.get(app.app_id)
                prune = self._prune_due.get(app.app_id)
                changed[app.app_id] = (
                    self._seen.get(app.app_id, -1),
                    None if ckpt is None else max(0.0, ckpt - t),
                    None if prune is None else max(0.0, prune - t),
                )

        # In chunks, each recorded once visited: a long first sweep (thousands of
        # never-seen apps) interrupted by a restart keeps its progress.
        for start in range(0, len(picked), SWEEP_CHUNK):
            await asyncio.gather(*(one(a, c) for a, c in picked[start : start + SWEEP_CHUNK]))
            if changed:
                async with self.pool.acquire() as conn:
                    await repo.save_sweep_state(conn, changed)
                changed.clear()
            more = start + SWEEP_CHUNK < len(picked)
            if more and self._leading and not await self._renew():
                log.warning("audit_sealer_lease_lost", visited=start + SWEEP_CHUNK)
                break
        return [a.app_id for a, _ in picked]

    async def _visit(self, app: AppRecord, counter: int) -> None:
        visit = await self.seal_app(app)
        if not visit.leader:
            return
        now = time.monotonic()
        if visit.complete:
            self._seen[app.app_id] = counter
        if visit.sealed and app.app_id not in self._checkpoint_due:
            self._checkpoint_due[app.app_id] = now + self.config.checkpoint_interval
        if self._checkpoint_due.get(app.app_id, float("inf")) <= now:
            await self.checkpoint(app)
            self._checkpoint_due.pop(app.app_id, None)
        if policy_of(app).audit_retention_days:
            if self._prune_due.get(app.app_id, 0.0) <= now:
                await self.prune_app(app)
                self._prune_due[app.app_id] = now + self.config.prune_interval
        else:
            self._prune_due.pop(app.app_id, None)

    async def seal_all(self) -> int:
        """Seal every app once (``oneauth worker --once``, tests); rows sealed."""
        total = 0
        for app in await self.active_apps():
            total += (await self.seal_app(app)).sealed
        return total

    # --- running ------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever(), name="oneauth-audit-sealer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._leading:
            self._leading = False
            # The next sealer takes over at its next round, not when the lease expires.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await lease.release(self.pool, LEASE, self._holder)

    async def lead(self) -> bool:
        """Take or renew the round's lease; True while this sealer holds it."""
        try:
            async with self.pool.acquire() as conn:
                held = await lease.try_lead(conn, LEASE, self._holder, self.config.lease_seconds)
        except BaseException:
            self._leading = False  # unknown: reload the state when it is held again
            raise
        if held and not self._leading:
            # Another sealer may have led meanwhile: start from what it recorded.
            self._seen.clear()
            self._checkpoint_due.clear()
            self._prune_due.clear()
            self._state_loaded = False
        self._leading = held
        return held

    async def _renew(self) -> bool:
        """Extend the lease within a long round; False if another sealer took it."""
        seconds = self.config.lease_seconds
        self._leading = await lease.renew(self.pool, LEASE, self._holder, seconds)
        return self._leading

    async def run_forever(self) -> None:
        while True:
            try:
                if await self.lead():
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: try again next round
                log.warning("audit_sealer_error", error=type(exc).__name__)
            await asyncio.sleep(self.config.interval)
