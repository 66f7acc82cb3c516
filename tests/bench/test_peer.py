"""The peer beside oneauth (ops/bench/peer.py): panva's oidc-provider started as the
bench starts it, one short wrk measurement of its client_credentials grant, and the
report's cells for a peer measured, skipped or absent (an older results.json)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from ops.bench import loadrun, peer, report
from ops.bench.loadrun import Load, LoadSpec, Shape, measure, measure_side_by_side
from ops.bench.procstat import CpuMeter
from ops.bench.stats import CpuSplit, RunSample
from ops.bench.wrk import WrkRun

from oneauth.testing import node
from rigcheck import unavailable


def test_peer_grants_es256_jwts_under_wrk(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        unavailable("wrk is needed for the peer measurement (apt-get install wrk)")
    started = peer.start()
    if isinstance(started, str):
        unavailable(started)
    try:
        assert started.info["version"] == node.provider_version()
        meter = CpuMeter(service=started.pid, postgres=None, cores=os.cpu_count() or 1)
        shape = Shape(connections=4, threads=1, duration=1, warmup=0, reps=1, retries=0)
        got = measure(started.port, started.spec(tmp_path), shape, meter)
        s = got.samples[0]
        assert s.requests > 50
        assert s.errors == 0, s.error_detail
        figures = peer.figures(started, got, ours_rps=s.rps * 2)
        assert figures["ratio"] == pytest.approx(2.0)
        assert figures["node_cores"] > 0
    finally:
        started.stop()
    assert started.server.proc.poll() is not None  # stopped: the port is free again


def test_no_node_is_a_reason_not_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> tuple[str, str]:
        raise node.NodeUnavailable("node and npm are needed")

    monkeypatch.setattr(node, "node_tools", missing)
    assert peer.start() == "peer skipped: node and npm are needed"


def test_side_by_side_alternates_and_retries_each_load(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def one(port: int, spec: LoadSpec, seconds: float, shape: Shape, meter: CpuMeter) -> WrkRun:
        calls.append(port)
        # B's first measured run (after its warm-up) is disturbed by another process.
        other = 1.0 if port == 2 and calls.count(2) == 2 else 0.0
        sample = RunSample(100, 1.0, 1, 2, 3, 4, 0)
        return WrkRun(sample, CpuSplit(1, 0, 0, other, 2), "")

    monkeypatch.setattr(loadrun, "_one", one)
    spec = LoadSpec("list.lua", lambda: Path("/dev/null"))
    meter = CpuMeter(service=None, postgres=None, cores=2)
    shape = Shape(connections=1, threads=1, duration=1, warmup=1, reps=2, retries=1)
    ours, theirs = measure_side_by_side([Load(1, spec, meter), Load(2, spec, meter)], shape)
    # Warm-ups, then A, B (disturbed, repeated), A, B, B.
    assert calls == [1, 2, 1, 2, 1, 2, 2]
    assert len(ours.samples) == len(theirs.samples) == 2
    assert len(theirs.discarded) == 1


def test_warm_up_runs_until_its_requests_and_stops_at_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spread load warms up until every active app had its requests: one run of
    100 requests when 0 are asked, three for 250, and never past MAX_WARMUP."""
    runs: list[int] = []

    def one(port: int, spec: LoadSpec, seconds: float, shape: Shape, meter: CpuMeter) -> WrkRun:
        runs.append(port)
        return WrkRun(RunSample(100, seconds, 1, 2, 3, 4, 0), CpuSplit(1, 0, 0, 0, 2), "")

    monkeypatch.setattr(loadrun, "_one", one)
    spec = LoadSpec("list.lua", lambda: Path("/dev/null"))
    meter = CpuMeter(service=None, postgres=None, cores=2)
    for asked, warm_runs in ((0, 1), (250, 3), (10**9, int(loadrun.MAX_WARMUP / 3))):
        runs.clear()
        shape = Shape(connections=1, threads=1, duration=1, warmup=3, reps=1, warm_requests=asked)
        got = measure(1, spec, shape, meter)
        assert len(runs) == warm_runs + 1  # the warm-ups and the one measured run
        assert got.warmup_seconds == 3 * warm_runs
        assert got.extra_requests == 100 * warm_runs
        assert len(got.samples) == 1


def test_report_cells_for_peer_measured_skipped_and_absent() -> None:
    base = {
        "scenario": "client_credentials",
        "title": "client_credentials grant",
        "apps": 1,
        "active_apps": 1,
        "status": "ok",
        "rps": 3000.0,
        "p50_ms": 4.0,
        "p95_ms": 8.0,
        "p99_ms": 11.0,
        "limit": "bare_pk",
        "limit_rate": 10000.0,
    }
    measured = {
        **base,
        "peer": {
            "status": "ok",
            "name": "panva's oidc-provider",
            "version": "9.13.3",
            "rps": 6000.0,
            "p99_ms": 5.0,
            "ratio": 0.5,
        },
    }
    rows = report.summary_rows({"scenarios": [measured]})
    assert "| 3,000/s, p99 11 ms | 10,000/s bare_pk |" in rows[2]
    assert "6,000/s; p99 5.0 ms (panva's oidc-provider 9.13.3; oneauth 0.50x)" in rows[2]
    assert "Ory Hydra: 513/s on 2 CPUs" in rows[2]
    skipped = {**base, "peer": {"status": "skipped", "note": "peer skipped: no node"}}
    assert "| peer skipped: no node |" in report.summary_rows({"scenarios": [skipped]})[2]
    absent = report.summary_rows({"scenarios": [base]})[2]
    assert "not measured in this run (the next full run fills it)" in absent
    md = report.render_markdown({"scenarios": [measured]})
    assert "not measured here" in md
