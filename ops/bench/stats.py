"""Pure numbers: percentiles, repetition summaries, limits, targets.

Nothing here touches a process, a socket or the clock, so the smoke tests can
pin the arithmetic that every figure in ``bench/results.json`` goes through.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# Results must repeat within this relative spread (issue 6).
REPEAT_TOLERANCE = 0.10


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (the definition wrk and HdrHistogram use).

    Nearest rank never invents a latency nobody saw, unlike interpolation.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= pct <= 100:
        raise ValueError("pct must be within 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: 0.08 means all repetitions lie within 8% of each other."""
    if not values:
        return 0.0
    mid = statistics.median(values)
    if mid == 0:
        return 0.0 if max(values) == min(values) else math.inf
    return (max(values) - min(values)) / mid


@dataclass(frozen=True)
class RunSample:
    """One measured repetition of a load (one wrk run, or one verifier run)."""

    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_detail: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class CpuSplit:
    """CPU used during a run, in cores (1.0 = one core busy for the whole run)."""

    service: float
    postgres: float
    loadgen: float
    other: float
    cores: int
    noise: str = ""  # who else used the CPU, when "other" was large
    irq: float = 0.0  # interrupt time (loopback network stack), charged to no process

    def percent_of_machine(self) -> dict[str, float]:
        cap = max(1, self.cores)
        return {
            "service": 100 * self.service / cap,
            "postgres": 100 * self.postgres / cap,
            "loadgen": 100 * self.loadgen / cap,
            "other": 100 * self.other / cap,
            "irq": 100 * self.irq / cap,
        }

    @staticmethod
    def mean(splits: Sequence[CpuSplit]) -> CpuSplit | None:
        if not splits:
            return None
        n = len(splits)
        return CpuSplit(
            service=sum(s.service for s in splits) / n,
            postgres=sum(s.postgres for s in splits) / n,
            loadgen=sum(s.loadgen for s in splits) / n,
            other=sum(s.other for s in splits) / n,
            cores=splits[0].cores,
            noise="; ".join(s.noise for s in splits if s.noise),
            irq=sum(s.irq for s in splits) / n,
        )


@dataclass(frozen=True)
class Summary:
    """Repetitions folded into the figures we report: medians, total errors, spread."""

    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int
    reps: int
    rps_spread: float

    @property
    def repeatable(self) -> bool:
        return self.rps_spread <= REPEAT_TOLERANCE


def summarize(samples: Sequence[RunSample]) -> Summary:
    """Median of each figure over repetitions; errors are summed (any error is a fail)."""
    if not samples:
        raise ValueError("no samples")
    rates = [s.rps for s in samples]
    return Summary(
        rps=statistics.median(rates),
        p50_ms=statistics.median(s.p50_ms for s in samples),
        p95_ms=statistics.median(s.p95_ms for s in samples),
        p99_ms=statistics.median(s.p99_ms for s in samples),
        errors=sum(s.errors for s in samples),
        requests=sum(s.requests for s in samples),
        reps=len(samples),
        rps_spread=spread(rates),
    )


@dataclass(frozen=True)
class Limit:
    """A ceiling measured on this machine in this run (e.g. argon2 verifies/s)."""

    name: str
    rate: float
    unit: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """What a scenario must reach. Any of the bounds may be absent."""

    text: str
    min_ratio: float | None = None
    min_rps: float | None = None
    max_p99_ms: float | None = None
    zero_errors: bool = True

    def check(self, summary: Summary, ratio: float | None) -> tuple[bool, list[str]]:
        """(passed, reasons it failed)."""
        why: list[str] = []
        if self.zero_errors and summary.errors:
            why.append(f"{summary.errors} errors")
        if self.min_ratio is not None and (ratio is None or ratio < self.min_ratio):
            shown = "n/a" if ratio is None else f"{ratio:.0%}"
            why.append(f"ratio {shown} < {self.min_ratio:.0%}")
        if self.min_rps is not None and summary.rps < self.min_rps:
            why.append(f"{summary.rps:.0f}/s < {self.min_rps:.0f}/s")
        if self.max_p99_ms is not None and summary.p99_ms >= self.max_p99_ms:
            why.append(f"p99 {summary.p99_ms:.1f} ms >= {self.max_p99_ms:.0f} ms")
        return (not why, why)


def ratio_to(rate: float, limit: Limit | None) -> float | None:
    if limit is None or limit.rate <= 0:
        return None
    return rate / limit.rate


@dataclass
class ScenarioResult:
    """One scenario at one fleet size, ready for results.json and the table."""

    scenario: str
    title: str
    apps: int
    active_apps: int
    status: str  # "ok", "unavailable" (endpoint missing) or "failed" (harness error)
    note: str = ""
    summary: Summary | None = None
    samples: list[RunSample] = field(default_factory=list)
    cpu: CpuSplit | None = None
    limit: str | None = None
    limit_rate: float | None = None
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    fail_reasons: list[str] = field(default_factory=list)
    keycloak_2vcpu: float | None = None
    connections: int = 0
    loadgen_capacity_rps: float | None = None
    db_per_request: dict[str, Any] = field(default_factory=dict)
    peer: dict[str, Any] | None = None  # the peer measured beside it (ops/bench/peer.py)
    warmup_s: float = 0.0  # unmeasured load before the repetitions

    def evaluate(self, target: Target | None, limit: Limit | None) -> None:
        """Fill ratio, target and pass/fail from the summary (no-op when not measured)."""
        if limit is not None:
            self.limit, self.limit_rate = limit.name, limit.rate
        if self.summary is None:
            return
        self.ratio = ratio_to(self.summary.rps, limit)
        if target is None:
            self.target = "0 errors"
            self.passed = self.summary.errors == 0
            self.fail_reasons = [] if self.passed else [f"{self.summary.errors} errors"]
            return
        self.target = target.text
        self.passed, self.fail_reasons = target.check(self.summary, self.ratio)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "scenario": self.scenario,
            "title": self.title,
            "apps": self.apps,
            "active_apps": self.active_apps,
            "status": self.status,
            "note": self.note,
            "connections": self.connections,
            "limit": self.limit,
            "limit_rate": self.limit_rate,
            "ratio": self.ratio,
            "target": self.target,
            "passed": self.passed,
            "fail_reasons": self.fail_reasons,
            "keycloak_2vcpu": self.keycloak_2vcpu,
            "loadgen_capacity_rps": self.loadgen_capacity_rps,
            "warmup_s": self.warmup_s,
            "db_per_request": self.db_per_request,
        }
        if self.peer is not None:
            body["peer"] = self.peer
        if self.summary is not None:
            s = self.summary
            body.update(
                rps=s.rps,
                p50_ms=s.p50_ms,
                p95_ms=s.p95_ms,
                p99_ms=s.p99_ms,
                errors=s.errors,
                requests=s.requests,
                reps=s.reps,
                rps_spread=s.rps_spread,
                repeatable=s.repeatable,
            )
            body["samples"] = [asdict(x) | {"rps": x.rps} for x in self.samples]
        if self.cpu is not None:
            body["cpu_cores"] = {
                "service": self.cpu.service,
                "postgres": self.cpu.postgres,
                "loadgen": self.cpu.loadgen,
                "other": self.cpu.other,
                "irq": self.cpu.irq,
            }
            body["cpu_percent_of_machine"] = self.cpu.percent_of_machine()
            if self.cpu.noise:
                body["cpu_noise"] = self.cpu.noise
        return body


def scale_check(
    one_app: ScenarioResult, many: ScenarioResult, max_factor: float = 1.25
) -> dict[str, Any] | None:
    """Latency at a large fleet against one app (target: within ``max_factor``).

    Compares medians (p50): under a closed-loop load p99 on a 2-core box is
    dominated by scheduler noise, while p50 moves with real per-request cost.
    The p99 factor is reported alongside for information.
    """
    a, b = one_app.summary, many.summary
    if a is None or b is None or a.p50_ms <= 0 or a.p99_ms <= 0:
        return None
    p50_factor = b.p50_ms / a.p50_ms
    return {
        "scenario": one_app.scenario,
        "apps": many.apps,
        "p50_factor": p50_factor,
        "p99_factor": b.p99_ms / a.p99_ms,
        "rps_factor": b.rps / a.rps if a.rps else None,
        "max_factor": max_factor,
        "passed": p50_factor <= max_factor,
    }
