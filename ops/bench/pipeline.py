"""One benchmark run: limits, then each fleet size in turn, then the fleet-wide probes.

For each fleet size (ascending, the fleet only grows): provision the missing
apps (one-app provisioning timed alone), time migrate-all, start the service
fresh (cold caches, like a deploy), prepare accounts and clients for the
active apps, run every scenario, and read the memory of the service's
Postgres backends while they are still connected.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from ops.bench import catalog, fleet, limits, pgstats, profile, servers, verifier_load, wrk
from ops.bench import peer as peer_mod
from ops.bench.bank import Bank, BankError, wanted_accounts
from ops.bench.cluster import DATABASE, SERVICE_ROLE, BenchCluster
from ops.bench.config import BenchConfig
from ops.bench.cpu_limits import CpuPool
from ops.bench.loadrun import (
    WARM_REQUESTS_PER_APP,
    Load,
    LoadSpec,
    Shape,
    measure,
    measure_side_by_side,
)
from ops.bench.procstat import CpuMeter, backend_memory, backend_pids
from ops.bench.scenarios import Definition, ScenarioFailed, Stage, Unavailable, definitions
from ops.bench.stats import Limit, ScenarioResult, Target, summarize

from oneauth.settings import Settings

Log = Callable[[str], None]
VERIFIER_TARGET = Target(">= 70% of raw signature verify, 0 errors", min_ratio=0.70)
VERIFIER_TOKENS = 32
CATALOG_SAMPLES = 41  # apps one probe backend enters: one for its baseline, 40 measured


def shape_of(cfg: BenchConfig, active_apps: int = 1) -> Shape:
    return Shape(
        connections=cfg.connections,
        threads=cfg.wrk_threads,
        duration=cfg.duration,
        warmup=cfg.warmup,
        reps=cfg.reps,
        # A disturbed repetition is repeated; on a busy box that costs more
        # time than a quick run has.
        retries=1 if cfg.quick else 2,
        warm_requests=0 if cfg.quick else WARM_REQUESTS_PER_APP * active_apps,
    )


def run_limits(
    cfg: BenchConfig, cluster: BenchCluster, pool: CpuPool, log: Log
) -> dict[str, Limit]:
    log("limits:")
    # Signatures vary little between repetitions; a quick run measures them once.
    found = limits.cpu_limits_all(
        pool, cfg.limit_seconds, cfg.reps, log, signature_reps=1 if cfg.quick else cfg.reps
    )
    found += limits.http_limits(
        dsn=cluster.dsn,
        workers=cfg.workers,
        shape=shape_of(cfg),
        pg_root=cluster.postmaster,
        cores=cfg.cores,
        log=log,
    )
    return {lim.name: lim for lim in found}


class StageRunner:
    def __init__(
        self,
        cfg: BenchConfig,
        cluster: BenchCluster,
        limits_found: dict[str, Limit],
        bank: Bank,
        port: int,
        pool: CpuPool,
        log: Log,
    ) -> None:
        self.cfg = cfg
        self.pool = pool
        self.cluster = cluster
        self.limits = limits_found
        self.bank = bank
        self.port = port
        self.log = log
        self.settings = Settings(
            env="development",
            database_url=cluster.dsn,
            public_url=f"http://127.0.0.1:{port}",
            master_key=cluster.master_key,
        )
        self.defs = definitions(cfg.cores)
        self.peer: peer_mod.Peer | str | None = None  # a reason when it could not start

    def _start_peer(self) -> None:
        try:
            self.peer = peer_mod.start()
        except Exception as exc:  # the peer's failure must not stop our own figures
            self.peer = f"peer failed to start: {type(exc).__name__}: {str(exc)[:300]}"
        if isinstance(self.peer, str):
            self.log(f"  {self.peer}")
        else:
            info = self.peer.info
            self.log(f"  peer: {info['name']} {info['version']} (node {info['node']})")

    def run(self, apps: int, first: bool) -> tuple[dict[str, Any], list[ScenarioResult]]:
        cfg, log = self.cfg, self.log
        log(f"\nfleet of {apps:,} apps:")
        timing = fleet.ensure(
            self.settings,
            apps,
            parallel=cfg.provision_parallel,
            single_samples=cfg.provision_samples,
            progress=log,
        )
        log(f"  provisioned {timing.provisioned_now:,} apps in {timing.seconds:.1f} s")
        waited = settle(self.cluster, limit_s=20 if cfg.quick else 300)
        if waited > 1:
            log(f"  waited {waited:.0f} s for Postgres to go idle (autovacuum after provisioning)")
        noop = fleet.migrate_noop(self.cluster.dsn, self.settings.migrate_parallelism)
        log(f"  migrate-all with nothing pending: {noop['seconds']:.2f} s for {noop['schemas']:,}")
        stage_doc: dict[str, Any] = {"apps": apps, "fleet": timing.to_json(), "migrate_noop": noop}
        active = [fleet.app_id(i) for i in range(1, min(apps, cfg.active) + 1)]
        results: list[ScenarioResult] = []
        with (
            tempfile.TemporaryDirectory(prefix="oneauth-bench-") as tmp,
            servers.start_service(
                dsn=self.cluster.service_dsn,
                master_key=self.cluster.master_key,
                workers=cfg.workers,
                port=self.port,
                **dict(cfg.service_env),
            ) as srv,
        ):
            meter = CpuMeter(service=srv.pid, postgres=self.cluster.postmaster, cores=cfg.cores)
            stage = Stage(
                apps=apps,
                active=active,
                wanted=wanted_accounts(active, cfg.connections),
                base=srv.base,
                dsn=self.cluster.dsn,
                bank=self.bank,
                tmp=Path(tmp),
                log=log,
            )
            blocked = self._prepare(stage)
            # The peer runs beside our client_credentials at the smallest fleet only
            # (it has one client, as our one-app stage has).
            if first and "client_credentials" in cfg.only:
                self._start_peer()
            try:
                for name in cfg.only:
                    if name == "verifier":
                        if first:
                            reason = blocked.get("apps") or blocked.get("accounts")
                            results.append(self._verifier(stage, reason))
                        continue
                    defn = self.defs[name]
                    results.append(self._scenario(defn, stage, meter, srv, blocked))
            finally:
                if isinstance(self.peer, peer_mod.Peer):
                    self.peer.stop()
                self.peer = None
            # The service's backends (it logs in as the service role, not the operator).
            pids = backend_pids(self.cluster.postmaster or 0, SERVICE_ROLE)
            stage_doc["postgres_memory"] = backend_memory(pids)
        probe = [fleet.app_id(i) for i in range(1, min(apps, CATALOG_SAMPLES) + 1)]
        try:
            stage_doc["catalog_per_app"] = catalog.per_app_cost(self.cluster.dsn, probe)
        except (psycopg.Error, RuntimeError) as exc:
            stage_doc["catalog_per_app"] = {"error": f"{type(exc).__name__}: {exc}"}
        cost = stage_doc["catalog_per_app"]
        if cost and "kib_per_app" in cost:
            self.log(f"  one more app schema costs a backend {cost['kib_per_app']:.0f} KiB")
        try:
            plans = catalog.per_statement_cost(self.cluster.dsn, probe[0])
        except (psycopg.Error, RuntimeError) as exc:
            plans = {"error": f"{type(exc).__name__}: {exc}"}
        stage_doc["plans_per_statement"] = plans
        if "kib_per_statement" in plans:
            self.log(f"  one kept statement costs a backend {plans['kib_per_statement']:.0f} KiB")
        stage_doc["active_apps"] = len(active)
        return stage_doc, results

    # ---------------------------------------------------------------- preparation

    def _prepare(self, stage: Stage) -> dict[str, str]:
        """Apps, clients and accounts; returns "status: why" for what could not be prepared."""

        def why(exc: BankError) -> str:
            return f"{'unavailable' if exc.missing else 'failed'}: {exc}"

        blocked: dict[str, str] = {}
        t0 = time.perf_counter()
        try:
            stage.run(lambda c: self.bank.load_apps(c, stage.active))
        except BankError as exc:
            return {"apps": why(exc)}
        try:
            self.bank.create_cc_clients(stage.dsn, stage.active)
        except Exception as exc:  # any failure here only blocks the scenarios that need it
            blocked["cc"] = f"failed: creating confidential clients: {exc}"
        try:
            made = stage.run(lambda c: self.bank.ensure_accounts(c, stage.wanted))
            self.log(
                f"  prepared {len(stage.wanted):,} accounts ({made} signups/logins) in "
                f"{time.perf_counter() - t0:.1f} s"
            )
        except BankError as exc:
            blocked["accounts"] = why(exc)
        return blocked

    # ---------------------------------------------------------------- scenarios

    def _result(
        self, defn_name: str, title: str, stage: Stage, status: str, note: str = ""
    ) -> ScenarioResult:
        return ScenarioResult(
            scenario=defn_name,
            title=title,
            apps=stage.apps,
            active_apps=len(stage.active),
            status=status,
            note=note,
            connections=self.cfg.connections,
        )

    def _scenario(
        self,
        defn: Definition,
        stage: Stage,
        meter: CpuMeter,
        srv: servers.Server,
        blocked: dict[str, str],
    ) -> ScenarioResult:
        res = self._result(defn.name, defn.title, stage, "ok")
        res.keycloak_2vcpu = defn.keycloak_2vcpu
        limit = self.limits.get(defn.limit)
        reason = next((blocked[n] for n in defn.needs if n in blocked), None)
        peer = self.peer if defn.name == "client_credentials" else None
        if reason:
            status, _, why = reason.partition(":")
            res.status, res.note = status, why.strip()[:300]
            res.evaluate(defn.target, limit)
            self.log(f"  {defn.name}: {status} ({res.note})")
            return res
        try:
            spec = defn.build(stage)
            db_dsn = self.cluster.pg.admin_dsn(DATABASE)
            before = pgstats.snapshot(self.cluster.admin_dsn, DATABASE)
            # Two snapshots back to back: their difference is what one snapshot
            # itself reads (it scans pg_class: 840k rows at 10,000 apps).
            tables_first = pgstats.table_snapshot(db_dsn)
            tables_before = pgstats.table_snapshot(db_dsn)
            statements_before = statements_after = pgstats.NO_STATEMENTS
            if self.cluster.statements:
                statements_before = pgstats.statements_snapshot(db_dsn)
            loads = [Load(self.port, spec, meter)]
            if isinstance(peer, peer_mod.Peer):
                node_meter = CpuMeter(service=peer.pid, postgres=None, cores=self.cfg.cores)
                loads.append(Load(peer.port, peer.spec(stage.tmp), node_meter))
            try:
                shape = shape_of(self.cfg, len(stage.active))
                measured, *beside = measure_side_by_side(loads, shape)
            except wrk.WrkError as exc:
                if len(loads) == 1:
                    raise
                # The peer's failure must not cost our figures: measure ours alone.
                peer, beside = f"side-by-side run failed, ours measured alone: {str(exc)[:300]}", []
                measured = measure(self.port, spec, shape, meter)
            after = pgstats.snapshot(self.cluster.admin_dsn, DATABASE)
            tables_after = pgstats.table_snapshot(db_dsn)
            if self.cluster.statements:
                statements_after = pgstats.statements_snapshot(db_dsn)
        except Unavailable as exc:
            res.status, res.note = "unavailable", str(exc)
        except BankError as exc:
            res.status, res.note = ("unavailable" if exc.missing else "failed"), str(exc)[:500]
        except (ScenarioFailed, wrk.WrkError) as exc:
            res.status, res.note = "failed", str(exc)[:500]
        if res.status != "ok":
            res.evaluate(defn.target, limit)
            self.log(f"  {defn.name}: {res.status} ({res.note})")
            return res
        res.samples = measured.samples
        res.summary = summarize(measured.samples)
        if isinstance(peer, peer_mod.Peer) and beside:
            res.peer = peer_mod.figures(peer, beside[0], res.summary.rps)
        elif isinstance(peer, str):
            res.peer = {"status": "skipped", "note": peer}
        res.cpu = measured.cpu
        if res.cpu is not None and res.cpu.loadgen > 0:
            res.loadgen_capacity_rps = res.summary.rps / res.cpu.loadgen
        total = res.summary.requests + measured.extra_requests
        res.db_per_request = pgstats.per_request(before, after, total)
        res.db_per_request["tables"] = pgstats.top_tables(
            tables_before, tables_after, total, own_cost=(tables_first, tables_before)
        )
        if self.cluster.statements:
            res.db_per_request["statements"] = pgstats.statements_per_request(
                statements_before, statements_after, total
            )
        res.warmup_s = measured.warmup_seconds
        notes = []
        if measured.warmup_seconds > self.cfg.warmup:
            notes.append(
                f"warmed up {measured.warmup_seconds:.0f} s"
                f" ({measured.extra_requests:,} requests over {len(stage.active):,} apps)"
            )
        if measured.discarded:
            notes.append("repeated (disturbed): " + "; ".join(measured.discarded))
        if measured.warmup_errors:
            notes.append(f"{measured.warmup_errors} errors during warm-up")
        res.note = " ".join(notes)
        if defn.name == "login":
            limit = self._argon2_now(limit, res)
        res.evaluate(defn.target, limit)
        s = res.summary
        cpu = res.cpu
        self.log(
            f"  {defn.name}: {s.rps:,.0f}/s p50 {s.p50_ms:.1f} p95 {s.p95_ms:.1f}"
            f" p99 {s.p99_ms:.1f} ms"
            f" errors {s.errors} spread {s.rps_spread:.0%}"
            + (
                f" cpu svc {cpu.service:.2f} pg {cpu.postgres:.2f} wrk {cpu.loadgen:.2f}"
                f" irq {cpu.irq:.2f} other {cpu.other:.2f}"
                if cpu
                else ""
            )
            + (f" ratio {res.ratio:.0%}" if res.ratio is not None else "")
            + f" -> {'PASS' if res.passed else 'FAIL'}"
        )
        if res.peer and res.peer.get("status") == "ok":
            p = res.peer
            self.log(
                f"  {defn.name} peer ({p['name']}): {p['rps']:,.0f}/s p50 {p['p50_ms']:.1f}"
                f" p99 {p['p99_ms']:.1f} ms errors {p['errors']} spread {p['rps_spread']:.0%};"
                f" oneauth/peer {p['ratio']:.2f}x"
            )
        if defn.name in self.cfg.profile:
            self._profile(defn, spec, stage, srv, meter)
        return res

    def _argon2_now(self, measured_before: Limit | None, res: ScenarioResult) -> Limit:
        """The argon2 limit for the login ratio: the higher of the start-of-run
        figure and one measured right after the login runs.

        Re-measuring catches a start-of-run figure taken while a neighbour was
        busy; taking the higher one keeps a busy moment now (e.g. autovacuum)
        from lowering the bar. Both are in the note.
        """
        now = limits.argon2_limit(
            self.pool, 2 * self.cfg.limit_seconds, 1, "argon2id_verify_now", per_core=False
        )
        res.note = (res.note + f" argon2 limit re-measured after the run: {now.rate:.1f}/s").strip()
        if measured_before is None or now.rate >= measured_before.rate:
            return now
        res.note += f" (at start: {measured_before.rate:.1f}/s, used)."
        return measured_before

    def _profile(
        self, defn: Definition, spec: LoadSpec, stage: Stage, srv: servers.Server, meter: CpuMeter
    ) -> None:
        seconds = max(5.0, self.cfg.duration)
        workers = sorted(servers.worker_pids(srv))
        label = f"{defn.name}-{stage.apps}"
        started = profile.start(workers, seconds, self.cfg.out, label)
        if not started:
            self.log("  (py-spy not installed: .venv/bin/pip install py-spy)")
            return
        shape = Shape(self.cfg.connections, self.cfg.wrk_threads, seconds + 1, 0, 1)
        measure(self.port, spec, shape, meter)
        paths = profile.finish(started, timeout=seconds + 30)
        summary = self.cfg.out / f"profile-{label}.txt"
        profile.write_summary(paths, summary)
        self.log(f"  profile: {summary}")

    def _verifier(self, stage: Stage, blocked: str | None) -> ScenarioResult:
        res = self._result("verifier", "in-process verifier (Verifier.verify)", stage, "ok")
        res.connections = 0
        if blocked:
            status, _, why = blocked.partition(":")
            res.status, res.note = status, why.strip()[:300]
            return res
        app = stage.active[0]
        info = self.bank.apps[app]
        key = stage.wanted[0]
        try:
            tokens = []
            # A chain of refreshes on one account: each yields a distinct access token.
            for _ in range(VERIFIER_TOKENS):
                tokens.append(stage.run(lambda c: self.bank.access_tokens(c, [key]))[key])
            alg = _token_alg(tokens[0])
            job = verifier_load.VerifierJob(info.issuer, info.audience, app, tuple(tokens))
            reps = verifier_load.run(
                job, processes=self.cfg.cores, seconds=self.cfg.duration, reps=self.cfg.reps
            )
        except (BankError, ValueError, OSError) as exc:
            res.status, res.note = "failed", str(exc)[:300]
            return res
        except Exception as exc:  # raised inside the spawned workers (e.g. JWKS fetch)
            res.status, res.note = "failed", f"{type(exc).__name__}: {str(exc)[:300]}"
            return res
        res.samples = [r.sample for r in reps]
        res.summary = summarize(res.samples)
        raw = statistics.median(r.raw_rate for r in reps)
        standalone = self.limits.get(f"{alg}_verify")
        res.note = (
            f"alg {alg}; {self.cfg.cores} processes; independent of the fleet size; limit ="
            f" bare cryptography verify of the same tokens, interleaved in the same processes"
            + (f" (standalone {alg}_verify: {standalone.rate:,.0f}/s)" if standalone else "")
        )
        res.evaluate(VERIFIER_TARGET, Limit(f"{alg}_verify_interleaved", raw, "verifies/s"))
        s = res.summary
        self.log(
            f"  verifier: {s.rps:,.0f}/s p50 {s.p50_ms * 1000:.0f} µs p99 {s.p99_ms * 1000:.0f} µs"
            f" errors {s.errors}" + (f" ratio {res.ratio:.0%}" if res.ratio is not None else "")
        )
        return res


def settle(cluster: BenchCluster, *, limit_s: float, idle_cores: float = 0.15) -> float:
    """Wait until Postgres uses less than ``idle_cores`` over 2 s, at most ``limit_s``.

    Provisioning thousands of apps leaves autovacuum busy with the new tables
    for minutes; measuring then would charge that to the scenarios.
    Returns the seconds waited.
    """
    root = cluster.postmaster
    if root is None:
        return 0.0
    meter = CpuMeter(service=None, postgres=root, cores=1)
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        before = meter.snapshot()
        time.sleep(2)
        if meter.split(before, meter.snapshot(), 0.0).postgres < idle_cores:
            break
    return time.monotonic() - t0


def _token_alg(token: str) -> str:
    import base64
    import json

    head = token.split(".", 1)[0]
    data = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return str(data["alg"])


def migrate_probe(cfg: BenchConfig, cluster: BenchCluster, log: Log) -> dict[str, Any] | None:
    if cfg.skip_migrate_probe:
        return None
    parallelism = Settings().migrate_parallelism
    result = fleet.migrate_one_new(cluster.dsn, parallelism)
    log(
        f"\napplying one new migration to {result['schemas']:,} schemas: {result['seconds']:.1f} s"
        f" (parallelism {parallelism}, {result['failed']} failed)"
        + (f": {result['first_error']}" if result["first_error"] else "")
    )
    return result
