"""Smoke tests of the benchmark harness's pure pieces (no Postgres, no wrk, no servers).

The full benchmark is ``make bench``; these pin the arithmetic and parsing that
every reported figure goes through, so a regression fails CI in milliseconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ops.bench import report
from ops.bench.bank import AppInfo, Bank, wanted_accounts
from ops.bench.config import from_args
from ops.bench.pgstats import top_tables
from ops.bench.procstat import parse_smaps_rollup, parse_stat
from ops.bench.profile import summarize as summarize_profile
from ops.bench.run import _memory_bound, _scale
from ops.bench.stats import (
    CpuSplit,
    Limit,
    RunSample,
    ScenarioResult,
    Target,
    percentile,
    scale_check,
    spread,
    summarize,
)
from ops.bench.wrk import LUA_DIR, MARKER, Request, WrkError, parse_output


def sample(rps: float, p99: float = 20.0, errors: int = 0, seconds: float = 10.0) -> RunSample:
    return RunSample(
        requests=round(rps * seconds),
        seconds=seconds,
        p50_ms=p99 / 4,
        p95_ms=p99 / 2,
        p99_ms=p99,
        max_ms=p99 * 2,
        errors=errors,
    )


# ------------------------------------------------------------------ statistics


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7
    # Fractional ranks round up: p91 of 10 values is the 10th, not the 9th.
    assert percentile([float(v) for v in range(1, 11)], 91) == 10
    assert percentile([3.0, 1.0, 2.0], 0) == 1  # unsorted input, rank floor of 1
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_summary_takes_medians_and_sums_errors() -> None:
    s = summarize([sample(1000), sample(1100, errors=2), sample(900, p99=40)])
    assert s.rps == pytest.approx(1000)
    assert s.p99_ms == 20
    assert s.errors == 2
    assert s.reps == 3
    assert s.rps_spread == pytest.approx(0.2)
    assert not s.repeatable
    assert summarize([sample(1000), sample(1050)]).repeatable
    assert spread([5.0, 5.0]) == 0


def test_throughput_target_needs_rate_latency_and_no_errors() -> None:
    target = Target("x", min_rps=1000, max_p99_ms=50)
    ok, why = target.check(summarize([sample(1200, p99=30)]), None)
    assert ok
    assert not why
    ok, why = target.check(summarize([sample(800, p99=30)]), None)
    assert not ok
    assert "800/s < 1000/s" in why[0]
    ok, why = target.check(summarize([sample(1200, p99=50)]), None)
    assert not ok
    assert "p99" in why[0]
    ok, why = target.check(summarize([sample(1200, errors=1)]), None)
    assert not ok
    assert why == ["1 errors"]


def test_ratio_target_and_evaluation() -> None:
    res = ScenarioResult("login", "login", apps=1, active_apps=1, status="ok")
    res.summary = summarize([sample(33.0)])
    res.evaluate(Target("80%", min_ratio=0.8), Limit("argon2id_verify", 40.0, "verifies/s"))
    assert res.ratio == pytest.approx(33 / 40)
    assert res.passed is True
    res.evaluate(Target("80%", min_ratio=0.8), Limit("argon2id_verify", 45.0, "verifies/s"))
    assert res.passed is False
    assert res.fail_reasons == ["ratio 73% < 80%"]
    # No limit measured: a ratio target cannot pass.
    res.evaluate(Target("80%", min_ratio=0.8), None)
    assert res.passed is False


def test_scale_check_compares_median_latency() -> None:
    one = ScenarioResult("refresh", "r", 1, 1, "ok", summary=summarize([sample(2000, p99=20)]))
    many = ScenarioResult("refresh", "r", 10000, 1000, "ok", summary=summarize([sample(1900, 24)]))
    check = scale_check(one, many)
    assert check is not None
    assert check["p50_factor"] == pytest.approx(1.2)
    assert check["passed"] is True
    slow = ScenarioResult("refresh", "r", 10000, 1000, "ok", summary=summarize([sample(1, 40)]))
    check = scale_check(one, slow)
    assert check is not None
    assert check["passed"] is False


def test_scale_rows_compare_with_one_app_and_the_next_smaller_fleet() -> None:
    def result(apps: int, p99: float) -> ScenarioResult:
        return ScenarioResult(
            "me", "m", apps, min(apps, 1000), "ok", summary=summarize([sample(1000, p99)])
        )

    rows = _scale([result(1, 10), result(1000, 20), result(10000, 22)], [1, 1000, 10000])
    assert [(r["apps"], round(r["p50_factor"], 2)) for r in rows] == [(1000, 2.0), (10000, 2.2)]
    assert "p50_factor_prev" not in rows[0]  # the next smaller fleet is the one-app baseline
    assert rows[1]["prev_apps"] == 1000
    assert rows[1]["p50_factor_prev"] == pytest.approx(1.1)
    md = "\n".join(report.scale_rows({"scale": rows}))
    assert "| me | 10,000 | 2.20x |" in md
    assert "1.10x (vs 1,000) |" in md


def test_cpu_split_percent_of_machine() -> None:
    cpu = CpuSplit(service=1.2, postgres=0.4, loadgen=0.2, other=0.0, cores=2)
    assert cpu.percent_of_machine()["service"] == pytest.approx(60)
    mean = CpuSplit.mean([cpu, CpuSplit(0.8, 0.0, 0.2, 0.2, 2, noise="x[1] 0.2")])
    assert mean is not None
    assert mean.service == pytest.approx(1.0)
    assert mean.noise == "x[1] 0.2"


# ------------------------------------------------------------------ wrk output


def wrk_stdout(**extra: int) -> str:
    data = {
        "duration_us": 10_000_000.0,
        "requests": 25_000.0,
        "bytes": 1e6,
        "errors": {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 0},
        "latency_us": {
            "min": 100.0,
            "max": 90_000.0,
            "mean": 5000.0,
            "stdev": 10.0,
            "p50": 4000.0,
            "p75": 6000.0,
            "p90": 8000.0,
            "p95": 9000.0,
            "p99": 21_500.0,
            "p999": 50_000.0,
        },
        "extra": extra,
    }
    return "Running 10s test @ http://127.0.0.1:1\n" + MARKER + " " + json.dumps(data) + "\n"


def test_parse_wrk_output() -> None:
    s = parse_output(wrk_stdout(bad_body=2, lost_chain=5))
    assert s.requests == 25_000
    assert s.rps == pytest.approx(2500)
    assert s.p50_ms == pytest.approx(4.0)
    assert s.p99_ms == pytest.approx(21.5)
    # read + status + bad bodies; lost chains repeat failures already counted.
    assert s.errors == 6
    assert s.error_detail["lost_chain"] == 5
    with pytest.raises(WrkError, match="no @@WRK_JSON@@"):
        parse_output("wrk crashed\n")


def test_request_lines_refuse_tabs() -> None:
    line = Request("POST", "/apps/a/v1/login", '{"a":1}', (("Content-Type", "x"),)).line()
    assert line.split("\t") == ["POST", "/apps/a/v1/login", '{"a":1}', "Content-Type: x"]
    with pytest.raises(ValueError, match="tabs"):
        Request("GET", "/x\ty").line()


@pytest.mark.skipif(shutil.which("luajit") is None, reason="luajit not installed")
def test_lua_report_is_what_the_parser_reads(tmp_path: Path) -> None:
    """Run common.lua's report() under LuaJIT with a fake wrk summary."""
    script = tmp_path / "t.lua"
    script.write_text(
        f'local common = dofile("{LUA_DIR}/common.lua")\n'
        "local lat = {min=1, max=9000, mean=50, stdev=2}\n"
        "function lat:percentile(p) return p * 100 end\n"
        "common.report({duration=2e6, requests=500, bytes=1,"
        " errors={connect=0, read=0, write=0, status=1, timeout=0}}, lat, {bad_body=1})\n"
    )
    out = subprocess.run(
        ["luajit", str(script)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    s = parse_output(out)
    assert s.rps == pytest.approx(250)
    assert s.p99_ms == pytest.approx(9.9)
    assert s.errors == 2


# ------------------------------------------------------------------ bank bookkeeping


def test_wanted_accounts_cover_chains_and_apps() -> None:
    one = wanted_accounts(["a"], connections=32)
    assert len(one) == 64
    assert {k[0] for k in one} == {"a"}
    many = wanted_accounts([f"app{i}" for i in range(1000)], connections=32)
    assert len(many) == 1000
    assert len({k[0] for k in many}) == 1000


def test_bank_hands_out_and_takes_back_tokens() -> None:
    bank = Bank.from_state(
        {
            "accounts": [
                {"app": "a", "index": 0, "refresh": "t0", "created": True},
                {"app": "a", "index": 1, "refresh": "t1", "created": True},
            ]
        },
        log=lambda _: None,
    )
    bank.apps["a"] = AppInfo("a", "cl_x", "iss", "aud")
    lines = bank.refresh_lines([("a", 0), ("a", 1)])
    assert lines == ["a\tcl_x\tt0", "a\tcl_x\tt1"]
    assert all(acc.refresh is None for acc in bank.accounts.values())  # spent
    assert bank.take_back(["a\tcl_x\tn1", "zzz\tcl\tn2", "bad line"]) == 1
    assert sorted(str(a.refresh) for a in bank.accounts.values()) == ["None", "n1"]


# ------------------------------------------------------------------ procfs parsers


def test_parse_proc_stat_with_spaces_in_name() -> None:
    fields = ["S", "42"] + ["0"] * 9 + ["100", "20", "7", "3"] + ["0"] * 30
    st = parse_stat("1234 (uvicorn (worker) x) " + " ".join(fields))
    assert (st.ppid, st.own, st.children) == (42, 120, 10)


def test_parse_smaps_rollup() -> None:
    text = (
        "55d0-7ffe ---p 00000000 00:00 0    [rollup]\n"
        "Rss:               20000 kB\nPss:                5000 kB\nAnonymous:          3000 kB\n"
    )
    assert parse_smaps_rollup(text) == {"Rss": 20000, "Pss": 5000, "Anonymous": 3000}


def test_profile_summary_self_and_inclusive() -> None:
    text = summarize_profile(["main;a;b 3", "main;a 1", "main;c 4", "garbage"])
    assert text.startswith("8 samples")
    assert "50.0   main;c" not in text  # frames are listed one by one
    assert " 50.0   c" in text
    assert "100.0   main" in text


# ------------------------------------------------------------------ report


def synthetic_doc() -> dict[str, Any]:
    ok = ScenarioResult("refresh", "refresh grant", 1, 1, "ok", connections=32)
    ok.samples = [sample(1500, p99=30), sample(1450, p99=32)]
    ok.summary = summarize(ok.samples)
    ok.cpu = CpuSplit(1.2, 0.5, 0.2, 0.1, 2)
    ok.keycloak_2vcpu = 240
    ok.evaluate(Target(">= 1,000/s", min_rps=1000, max_p99_ms=50), Limit("bare_pk", 5000, "r/s"))
    missing = ScenarioResult("me", "GET /v1/me", 1, 1, "unavailable", note="HTTP 404")
    return {
        "machine": {"cores": 2, "cpu_model": "Test CPU", "python": "3.11"},
        "config": {"workers": 2, "connections": 32, "reps": 2, "duration": 3, "quick": True},
        "limits": {
            "bare_pk": {"rate": 5000.0, "unit": "requests/s", "detail": {"p50_ms": 1, "p99_ms": 3}},
            "argon2id_verify": {
                "rate": 41.0,
                "unit": "verifies/s",
                "detail": {"params": {"memory_kib": 19456, "time_cost": 2, "parallelism": 1}},
            },
        },
        "scenarios": [ok.to_json(), missing.to_json()],
        "scale": [],
        "stages": [
            {
                "apps": 1,
                "fleet": {"provisioned_now": 1, "seconds": 0.2, "single_app_median_s": 0.2},
                "migrate_noop": {"seconds": 0.01, "schemas": 1},
                "postgres_memory": {
                    "backends": 4,
                    "anonymous_mib_p50": 3.0,
                    "anonymous_mib_max": 4.5,
                    "pss_mib_p50": 6.0,
                    "pss_mib_max": 9.0,
                },
            }
        ],
    }


def test_markdown_table_shows_figures_limits_and_verdicts() -> None:
    doc = synthetic_doc()
    doc["targets"] = report.summarize_targets(doc)
    md = report.render_markdown(doc)
    summary, row = (line for line in md.splitlines() if line.startswith("| refresh grant"))
    assert "| 1,475/s, p99 31 ms | 5,000/s bare_pk |" in summary
    assert "1,475/s; 7.8 / 15.5 / 31.0 ms" in row
    assert "5,000/s bare_pk" in row
    assert "30%" in row
    assert "| 240 |" in row
    assert "PASS" in row
    assert "60% / 25% / 10%" in row  # CPU as a share of the 2-core machine
    assert "unavailable: HTTP 404" in md
    assert "m=19456 KiB t=2 p=1" in md
    assert "| 1 | 1 | 0.2 s | 0.200 s |" in md
    provisioning = [t for t in doc["targets"] if t["target"].startswith("provisioning one app")]
    assert provisioning
    assert provisioning[0]["passed"] is True


def test_memory_bound_is_baseline_plus_apps_and_kept_statements() -> None:
    one = {"apps": 1, "postgres_memory": {"backends": 2, "anonymous_mib_max": 8.0}}
    many = {
        "apps": 1000,
        "postgres_memory": {"backends": 20, "anonymous_mib_max": 40.0},
        "catalog_per_app": {"kib_per_app": 256.0},
        "plans_per_statement": {"kib_per_statement": 64.0},
    }
    bound = _memory_bound([one, many], max_apps=100, statements=16)
    assert bound is not None
    assert bound["bound_mib"] == pytest.approx(8.0 + 100 * 0.25 + 16 * 0.0625)
    assert bound["max_mib"] == 40.0
    assert bound["passed"] is False
    assert _memory_bound([one, many], max_apps=100, statements=128)["passed"] is True  # type: ignore[index]
    assert _memory_bound([one, many], max_apps=256, statements=0)["passed"] is True  # type: ignore[index]
    assert _memory_bound([one], max_apps=256, statements=100) is None  # no schema cost measured
    doc = synthetic_doc()
    doc["postgres_memory_bound"] = _memory_bound([one, many], max_apps=256, statements=1000)
    target = report.summarize_targets(doc)[-1]
    assert target["target"].endswith(
        "(<= 134 MiB anonymous: 8 MiB + 256 apps x 256 KiB + 1,000 statements x 64 KiB)"
    )


def test_json_round_trip(tmp_path: Path) -> None:
    doc = synthetic_doc()
    paths = report.write(tmp_path, doc)
    loaded = json.loads(paths[0].read_text())
    assert loaded["scenarios"][0]["rps"] == pytest.approx(1475)
    assert loaded["scenarios"][0]["passed"] is True
    assert paths[1].read_text().startswith("# oneauth benchmark")


def test_chart_series_marks_missing_scenarios() -> None:
    names, sizes, rates = report.chart_series(synthetic_doc())
    assert names == ["refresh", "me"]
    assert sizes == [1]
    assert rates[1] == [pytest.approx(1475), 0.0]


# ------------------------------------------------------------------ options


def test_options_quick_and_full() -> None:
    quick = from_args(["--quick"])
    assert quick.apps == (1, 100)
    assert quick.duration < 5
    assert quick.out == Path("bench/quick")  # never over the committed full run
    full = from_args(["--apps", "10000,1,1000", "--only", "refresh,me"])
    assert full.apps == (1, 1000, 10000)  # ascending: the fleet only grows
    assert full.only == ("refresh", "me")
    assert full.reps >= 3
    assert full.out == Path("bench")


def test_options_refuse_unknown_scenarios_and_owned_env(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        from_args(["--only", "refresh,nope"])
    assert "unknown scenario(s) nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        from_args(["--service-env", "ONEAUTH_PORT=1"])  # the harness's own
    assert "not one the harness sets" in capsys.readouterr().err


def test_top_tables_subtract_the_snapshots_own_reads() -> None:
    first = {"pg_catalog.pg_class": (10, 1000, 0, 0), "app.users": (0, 0, 5, 5)}
    before = {"pg_catalog.pg_class": (11, 1800, 0, 0), "app.users": (0, 0, 5, 5)}
    after = {"pg_catalog.pg_class": (12, 2700, 0, 0), "app.users": (0, 0, 105, 105)}
    rows = {r["table"]: r for r in top_tables(before, after, 100, own_cost=(first, before))}
    assert rows["app.users"] == {
        "table": "app.users",
        "rows_per_request": 1.0,
        "seq_scans_per_request": 0.0,
        "seq_rows_per_request": 0.0,
        "idx_scans_per_request": 1.0,
    }
    # 900 rows read in the interval, 800 of them by the "before" snapshot itself.
    assert rows["pg_catalog.pg_class"]["rows_per_request"] == 1.0
    assert rows["pg_catalog.pg_class"]["seq_scans_per_request"] == 0.0
