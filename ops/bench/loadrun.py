"""Warm-up, repetitions and disturbance handling around wrk runs.

Every HTTP figure (limits and scenarios) goes through ``measure``: unmeasured
warm-up runs (JIT-free Python still has caches, pools and TCP slow start to
fill), then ``reps`` measured runs. The warm-up is one run, or as many as it takes
to send ``warm_requests`` (at most ``MAX_WARMUP`` s): spread over 1,000 apps, a
few seconds give each app a handful of requests, so the measured runs would see
every app's first units on each backend (its statements prepared and planned,
its keys loaded) instead of the service as it runs after a minute. This box is shared, so a
repetition during which processes outside the benchmark used more than
``NOISE_CORES`` is discarded and repeated, at most ``MAX_RETRIES`` times per
measurement; the noise is reported either way. ``measure_side_by_side`` runs the
repetitions of several servers in turn (oneauth and its peer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ops.bench import wrk
from ops.bench.procstat import NOISE_CORES, CpuMeter
from ops.bench.stats import CpuSplit, RunSample

MAX_RETRIES = 2
MAX_WARMUP = 60.0  # seconds
# Warm-up requests per active app in a full run (a quick one warms for its seconds
# only). A pooled backend keeps an app's plans from its third unit there and
# Postgres settles on a generic plan after five more: ~8 units per app on each of
# its home backends (one per uvicorn worker), so 20 leaves some slack.
WARM_REQUESTS_PER_APP = 20


@dataclass
class LoadSpec:
    """What to send. ``make_input`` writes a fresh request file for each run
    (single-use refresh tokens); ``after_run`` reads back what the run left."""

    script: str
    make_input: Callable[[], Path]
    expect: str = ""
    out_path: Path | None = None
    after_run: Callable[[], None] | None = None


@dataclass
class Measured:
    samples: list[RunSample] = field(default_factory=list)
    cpus: list[CpuSplit] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    warmup_errors: int = 0
    warmup_seconds: float = 0.0
    extra_requests: int = 0  # sent by the warm-up and by discarded repetitions

    @property
    def cpu(self) -> CpuSplit | None:
        return CpuSplit.mean(self.cpus)


@dataclass(frozen=True)
class Shape:
    """How hard and how long: the same for every scenario and limit in a run."""

    connections: int
    threads: int
    duration: float
    warmup: float  # seconds of one warm-up run
    reps: int
    retries: int = MAX_RETRIES
    # Warm-up runs go on until this many requests were sent (at most MAX_WARMUP s):
    # what a service that has served every active app for a while has seen.
    warm_requests: int = 0


def _one(port: int, spec: LoadSpec, seconds: float, shape: Shape, meter: CpuMeter) -> wrk.WrkRun:
    path = spec.make_input()
    try:
        return wrk.run(
            port=port,
            script=spec.script,
            input_path=path,
            seconds=seconds,
            connections=shape.connections,
            threads=shape.threads,
            meter=meter,
            expect=spec.expect,
            out_path=spec.out_path,
        )
    finally:
        if spec.after_run is not None:
            spec.after_run()


@dataclass(frozen=True)
class Load:
    """One server and what to send it, with the meter that knows its processes."""

    port: int
    spec: LoadSpec
    meter: CpuMeter


def measure(port: int, spec: LoadSpec, shape: Shape, meter: CpuMeter) -> Measured:
    return measure_side_by_side([Load(port, spec, meter)], shape)[0]


def measure_side_by_side(loads: Sequence[Load], shape: Shape) -> list[Measured]:
    """Each load warmed up, then their repetitions in turn (A, B, A, B, ...): drift
    on the machine hits all of them alike. Each has its own retry budget."""
    outs = [Measured() for _ in loads]
    for load, out in zip(loads, outs, strict=True):
        while shape.warmup > 0:
            warm = _one(load.port, load.spec, shape.warmup, shape, load.meter).sample
            out.warmup_errors += warm.errors
            out.extra_requests += warm.requests
            out.warmup_seconds += shape.warmup
            if out.extra_requests >= shape.warm_requests or out.warmup_seconds >= MAX_WARMUP:
                break
    retries = [shape.retries] * len(loads)
    while any(len(out.samples) < shape.reps for out in outs):
        for i, (load, out) in enumerate(zip(loads, outs, strict=True)):
            if len(out.samples) >= shape.reps:
                continue
            run = _one(load.port, load.spec, shape.duration, shape, load.meter)
            if run.cpu.other > NOISE_CORES and retries[i] > 0:
                retries[i] -= 1
                out.extra_requests += run.sample.requests
                out.discarded.append(
                    f"{run.sample.rps:.0f}/s with other={run.cpu.other:.2f} cores ({run.cpu.noise})"
                )
                continue
            out.samples.append(run.sample)
            out.cpus.append(run.cpu)
    return outs
