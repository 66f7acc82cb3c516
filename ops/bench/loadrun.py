"""Warm-up, repetitions and disturbance handling around wrk runs.

Every HTTP figure (limits and scenarios) goes through ``measure``: one
unmeasured warm-up run (JIT-free Python still has caches, pools and TCP
slow start to fill), then ``reps`` measured runs. This box is shared, so a
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
    warmup: float
    reps: int
    retries: int = MAX_RETRIES


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
        if shape.warmup > 0:
            warm = _one(load.port, load.spec, shape.warmup, shape, load.meter).sample
            out.warmup_errors, out.extra_requests = warm.errors, warm.requests
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
