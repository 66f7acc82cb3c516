"""results.json and results.md from the collected figures (pure: no I/O but writing).

The Markdown is rendered from the same dictionary that is written to
results.json, so the two cannot disagree, and the smoke tests can render a
synthetic document.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ops.bench.loadrun import WARM_REQUESTS_PER_APP


def _num(value: Any, fmt: str = ",.0f", missing: str = "–") -> str:
    if value is None:
        return missing
    return format(float(value), fmt)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value):.0%}"


def _pass(value: Any) -> str:
    return {True: "PASS", False: "**FAIL**"}.get(value, "–")


def _limit_text(s: dict[str, Any]) -> str:
    if not s.get("limit") or s.get("limit_rate") is None:
        return "–"
    return f"{_num(s['limit_rate'])}/s {s['limit']}"


def _peer_text(s: dict[str, Any]) -> str:
    peer = s.get("peer")
    if not peer:
        return "–"
    if peer.get("status") != "ok":
        return str(peer.get("note") or peer.get("status"))
    return (
        f"{_num(peer['rps'])}/s; p99 {peer['p99_ms']:.1f} ms ({peer['name']} "
        f"{peer['version']}; oneauth {_num(peer.get('ratio'), '.2f')}x)"
    )


# Published by those projects, not measured here (context only; ops/bench/README.md).
PUBLISHED = {
    "login": "Keycloak: 15/s per vCPU",
    "refresh": "Keycloak: 120/s per vCPU",
    "client_credentials": "Keycloak: 120/s per vCPU; Ory Hydra: 513/s on 2 CPUs",
    "introspection": "Ory Hydra: 5,109/s on 2 CPUs",
}
PUBLISHED_NOTE = (
    "Published by those projects, not measured here: Keycloak's sizing guide "
    '("Concepts for sizing CPU and memory resources", per vCPU; see its note on the CPU '
    "architecture it was measured on), Ory Hydra's docs/hydra/benchmark.md (2 CPUs in CI, "
    "in-memory store, BCRYPT_COST=8)."
)
RATIO_SCENARIOS = ("login", "verifier")  # targets relative to a limit: show the ratio


def summary_rows(doc: dict[str, Any]) -> list[str]:
    """The README's table: one row per scenario, one column per fleet size, with the
    limit and the peer measured in the same run and others' published figures."""
    results = doc.get("scenarios", [])
    sizes = sorted({int(s["apps"]) for s in results})
    names = list(dict.fromkeys(s["scenario"] for s in results))
    cell = {(s["scenario"], s["apps"]): s for s in results}
    rows = [
        "| scenario | "
        + " | ".join(f"{n:,} app{'s' if n > 1 else ''}" for n in sizes)
        + " | limit measured in this run | peer measured in this run "
        "| published by others (not measured here) | target |",
        "|---|" + "---:|" * len(sizes) + "---|---|---|---|",
    ]
    for name in names:
        first = cell.get((name, sizes[0]), {})
        figures = []
        for n in sizes:
            s = cell.get((name, n))
            if s is None or s.get("status") != "ok":
                figures.append("–" if s is None else str(s.get("status")))
                continue
            extra = (
                f" ({_pct(s.get('ratio'))})"
                if name in RATIO_SCENARIOS
                else f", p99 {s['p99_ms']:.0f} ms"
            )
            figures.append(f"{_num(s['rps'])}/s{extra}")
        if first.get("peer"):
            peer = _peer_text(first)
        elif name == "client_credentials":
            peer = "not measured in this run (the next full run fills it)"
        else:
            peer = "–"
        rows.append(
            f"| {first.get('title', name)} | {' | '.join(figures)} | {_limit_text(first)} "
            f"| {peer} | {PUBLISHED.get(name, '–')} | {first.get('target') or '–'} |"
        )
    return rows


def scenario_rows(doc: dict[str, Any]) -> list[str]:
    rows = [
        "| scenario | apps | figure (rate; p50 / p95 / p99) | errors | CPU service / pg / wrk "
        "| limit measured here | ratio | peer measured here | Keycloak 2 vCPU (published) "
        "| target | pass |",
        "|---|---:|---|---:|---|---|---:|---|---:|---|---|",
    ]
    for s in doc.get("scenarios", []):
        head = f"| {s['title']} | {s['apps']:,} ({s['active_apps']:,} active) |"
        if s.get("status") != "ok":
            rows.append(
                f"{head} {s['status']}: {s.get('note', '')} | – | – | "
                f"{_limit_text(s)} | – | {_peer_text(s)} | {_num(s.get('keycloak_2vcpu'))} | "
                f"{s.get('target') or '–'} | – |"
            )
            continue
        figure = f"{_num(s['rps'])}/s; {s['p50_ms']:.1f} / {s['p95_ms']:.1f} / {s['p99_ms']:.1f} ms"
        if not s.get("repeatable", True):
            figure += f" (spread {s['rps_spread']:.0%})"
        cpu = s.get("cpu_percent_of_machine")
        cpu_text = (
            f"{cpu['service']:.0f}% / {cpu['postgres']:.0f}% / {cpu['loadgen']:.0f}%"
            if cpu
            else "–"
        )
        why = "; ".join(s.get("fail_reasons") or [])
        rows.append(
            f"{head} {figure} | {s.get('errors', 0)} | {cpu_text} | "
            f"{_limit_text(s)} | {_pct(s.get('ratio'))} | {_peer_text(s)} | "
            f"{_num(s.get('keycloak_2vcpu'))} | {s.get('target') or '–'} | "
            f"{_pass(s.get('passed'))}{' (' + why + ')' if why else ''} |"
        )
    return rows


def limit_rows(doc: dict[str, Any]) -> list[str]:
    rows = ["| limit | rate (all cores) | per core | detail |", "|---|---:|---:|---|"]
    for name, lim in doc.get("limits", {}).items():
        d = lim.get("detail", {})
        extra = []
        if "params" in d:
            p = d["params"]
            extra.append(f"m={p['memory_kib']} KiB t={p['time_cost']} p={p['parallelism']}")
        if "p99_ms" in d:
            extra.append(f"p50 {d['p50_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms")
        if d.get("loadgen_capacity_rps"):
            extra.append(f"wrk ~{d['loadgen_capacity_rps']:,.0f}/s per core")
        if d.get("spread") is not None:
            extra.append(f"spread {d['spread']:.0%}")
        rows.append(
            f"| {name} | {_num(lim['rate'])} {lim['unit']} | {_num(d.get('per_core'))} | "
            f"{'; '.join(extra)} |"
        )
    return rows


def scale_rows(doc: dict[str, Any]) -> list[str]:
    rows = [
        "| scenario | apps | p50 vs 1 app | p99 vs 1 app | rate vs 1 app | target | pass "
        "| p50 vs next smaller fleet |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for s in doc.get("scale", []):
        prev = (
            f"{s['p50_factor_prev']:.2f}x (vs {s['prev_apps']:,})"
            if "p50_factor_prev" in s
            else "–"
        )
        rows.append(
            f"| {s['scenario']} | {s['apps']:,} | {s['p50_factor']:.2f}x | {s['p99_factor']:.2f}x "
            f"| {_num(s.get('rps_factor'), '.2f')}x | p50 <= {s['max_factor']}x | "
            f"{_pass(s['passed'])} | {prev} |"
        )
    return rows


def fleet_rows(doc: dict[str, Any]) -> list[str]:
    rows = [
        "| apps | provisioned now | time | one app (median) | migrate-all, nothing pending "
        "| Postgres memory per backend (anon p50 / max; Pss max) | one app schema |",
        "|---:|---:|---:|---:|---:|---|---:|",
    ]
    for st in doc.get("stages", []):
        f = st.get("fleet", {})
        m = st.get("migrate_noop") or {}
        mem = st.get("postgres_memory") or {}
        mem_text = (
            f"{mem['anonymous_mib_p50']:.1f} / {mem['anonymous_mib_max']:.1f} MiB; "
            f"{mem['pss_mib_max']:.1f} MiB ({mem['backends']} backends)"
            if mem.get("backends")
            else "–"
        )
        rows.append(
            f"| {st['apps']:,} | {f.get('provisioned_now', 0):,} | "
            f"{_num(f.get('seconds'), '.1f')} s "
            f"| {_num(f.get('single_app_median_s'), '.3f')} s | "
            f"{_num(m.get('seconds'), '.2f')} s ({m.get('schemas', 0):,} schemas) | {mem_text} "
            f"| {_num((st.get('catalog_per_app') or {}).get('kib_per_app'))} KiB |"
        )
    return rows


def statement_rows(doc: dict[str, Any]) -> list[str]:
    """Postgres work per request from pg_stat_statements (``--statements``), if recorded."""
    rows: list[str] = []
    for s in doc.get("scenarios", []):
        st = (s.get("db_per_request") or {}).get("statements")
        if not st:
            continue
        if not rows:
            rows = [
                "| scenario | apps | statements | plans | planning ms | execution ms "
                "| costliest statement (plans, planning + execution ms per request) |",
                "|---|---:|---:|---:|---:|---:|---|",
            ]
        top = st["top"][0] if st.get("top") else None
        top_text = (
            f"`{top['statement'][:70]}` ({top['plans']:.2f}; "
            f"{top['plan_ms']:.3f} + {top['exec_ms']:.3f})"
            if top
            else "–"
        )
        evicted = f" ({st['evicted']:,} entries evicted: low)" if st.get("evicted") else ""
        rows.append(
            f"| {s['scenario']} | {s['apps']:,} | {st['statements']:.2f} | {st['plans']:.2f} "
            f"| {st['plan_ms']:.3f} | {st['exec_ms']:.3f}{evicted} | {top_text} |"
        )
    return rows


def render_markdown(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    cfg = doc.get("config", {})
    lines = [
        "# oneauth benchmark",
        "",
        f"{m.get('cores')} cores ({m.get('cpu_model')}), Python {m.get('python')}, "
        f"{m.get('postgres')}, {m.get('openssl_cryptography')}, {m.get('wrk')}. "
        f"uvicorn workers: {cfg.get('workers')}; wrk: {cfg.get('connections')} connections, "
        f"{cfg.get('wrk_threads')} thread(s); {cfg.get('reps')} x {cfg.get('duration')} s "
        f"after {cfg.get('warmup')} s warm-up"
        + (
            "; QUICK"
            if cfg.get("quick")
            else f" (repeated until each active app had {WARM_REQUESTS_PER_APP} requests)"
        )
        + ". "
        "Figures are medians over repetitions; CPU is % of the whole machine.",
        "",
        *([f"**The run stopped early: {doc['error']}**", ""] if doc.get("error") else []),
        *(
            [f"Service settings for this run: {cfg['service_env']}.", ""]
            if cfg.get("service_env")
            else []
        ),
        "## Summary",
        "",
        *summary_rows(doc),
        "",
        PUBLISHED_NOTE,
        "",
        "## Scenarios",
        "",
        *scenario_rows(doc),
        "",
        "## Limits measured in this run",
        "",
        *limit_rows(doc),
        "",
        "## Scale: latency against one app",
        "",
        *scale_rows(doc),
        "",
        "## Fleet: provisioning, migrations, Postgres memory",
        "",
        *fleet_rows(doc),
    ]
    statements = statement_rows(doc)
    if statements:
        lines += [
            "",
            "## Postgres work per request (pg_stat_statements, background work included)",
            "",
            *statements,
        ]
    one_new = doc.get("migrate_one_new")
    if one_new:
        lines += [
            "",
            f"Applying one new migration to all {one_new['schemas']:,} app schemas took "
            f"{one_new['seconds']:.1f} s (parallelism {one_new['parallelism']}, "
            f"{one_new['failed']} failed).",
        ]
    targets = doc.get("targets", [])
    if targets:
        lines += ["", "## Targets", "", "| target | measured | pass |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['measured']} | {_pass(t['passed'])} |" for t in targets]
    notes = doc.get("notes", [])
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def write(out: Path, doc: dict[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(doc))
    return [json_path, md_path]


def summarize_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per target of issue 6, from the scenario, scale and fleet figures."""
    out: list[dict[str, Any]] = []
    for s in doc.get("scenarios", []):
        if s.get("status") == "ok" and s.get("target"):
            out.append(
                {
                    "target": f"{s['scenario']} @ {s['apps']:,} apps: {s['target']}",
                    "measured": f"{s['rps']:,.0f}/s, p99 {s['p99_ms']:.1f} ms, "
                    f"{s.get('errors', 0)} errors, ratio {_pct(s.get('ratio'))}",
                    "passed": s.get("passed"),
                }
            )
        elif s.get("status") != "ok":
            out.append(
                {
                    "target": f"{s['scenario']} @ {s['apps']:,} apps",
                    "measured": f"{s['status']}: {s.get('note', '')}",
                    "passed": None,
                }
            )
    for sc in doc.get("scale", []):
        out.append(
            {
                "target": f"{sc['scenario']} @ {sc['apps']:,} apps: latency within "
                f"{sc['max_factor']}x of one app",
                "measured": f"p50 {sc['p50_factor']:.2f}x, p99 {sc['p99_factor']:.2f}x",
                "passed": sc["passed"],
            }
        )
    for st in doc.get("stages", []):
        median = st.get("fleet", {}).get("single_app_median_s")
        if median is not None:
            out.append(
                {
                    "target": f"provisioning one app (fleet of {st['apps']:,}) < 1 s",
                    "measured": f"{median:.3f} s median",
                    "passed": median < 1.0,
                }
            )
    mem = doc.get("postgres_memory_bound")
    if mem:
        out.append(
            {
                "target": "Postgres memory per connection bounded (<= "
                f"{mem['bound_mib']:.0f} MiB anonymous: {mem['baseline_mib']:.0f} MiB + "
                f"{mem['max_apps_per_connection']} apps x {mem['per_app_kib']:.0f} KiB + "
                f"{mem['statement_cache_size']:,} statements x {mem['per_statement_kib']:.0f} KiB)",
                "measured": f"max {mem['max_mib']:.1f} MiB over all stages",
                "passed": mem["passed"],
            }
        )
    return out


def scenario_table_for_console(doc: dict[str, Any]) -> str:
    return "\n".join(scenario_rows(doc))


def chart_series(doc: dict[str, Any]) -> tuple[list[str], list[int], dict[int, list[float]]]:
    """Scenario names, fleet sizes and rate per (size, scenario) for the chart; 0 = not run."""
    scenarios = [s for s in doc.get("scenarios", []) if s.get("scenario") != "verifier"]
    names: list[str] = []
    sizes: list[int] = []
    for s in scenarios:
        if s["scenario"] not in names:
            names.append(s["scenario"])
        if s["apps"] not in sizes:
            sizes.append(s["apps"])
    rates = {size: [0.0] * len(names) for size in sizes}
    for s in scenarios:
        if s.get("status") == "ok":
            rates[s["apps"]][names.index(s["scenario"])] = float(s["rps"])
    return names, sorted(sizes), rates


def limit_lines(doc: dict[str, Any], names: Sequence[str]) -> list[float | None]:
    by_name = {s["scenario"]: s.get("limit_rate") for s in doc.get("scenarios", [])}
    return [by_name.get(n) for n in names]
