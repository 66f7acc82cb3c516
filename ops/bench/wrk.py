"""Run wrk (Debian's ``wrk`` 4.x, LuaJIT) with our Lua scripts and read its result.

The scripts print one ``@@WRK_JSON@@ {...}`` line from ``done()``; parsing it is
pure (``parse_output``) so the smoke tests can check it without wrk installed.
Traffic only ever goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.bench.procstat import CpuMeter
from ops.bench.stats import CpuSplit, RunSample

LUA_DIR = Path(__file__).resolve().parent / "lua"
MARKER = "@@WRK_JSON@@"


class WrkError(RuntimeError):
    pass


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk not found: apt-get install wrk")
    return found


def wrk_version() -> str:
    try:
        proc = subprocess.run(
            [wrk_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired, WrkError):
        return "not installed"
    return (
        (proc.stdout or proc.stderr).splitlines()[0].strip() if proc.stdout or proc.stderr else ""
    )


@dataclass(frozen=True)
class Request:
    """One request template; headers must not contain tabs or newlines."""

    method: str
    path: str
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def line(self) -> str:
        fields = [self.method, self.path, self.body, *(f"{k}: {v}" for k, v in self.headers)]
        for f in fields:
            if "\t" in f or "\n" in f:
                raise ValueError("request fields must not contain tabs or newlines")
        return "\t".join(fields)


def write_requests(path: Path, requests: Sequence[Request]) -> None:
    path.write_text("".join(r.line() + "\n" for r in requests))


def parse_output(stdout: str) -> RunSample:
    """The RunSample in wrk's stdout; raises WrkError if the marker line is missing."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise WrkError(f"no {MARKER} line in wrk output:\n{stdout[-2000:]}")
    errors = {k: int(v) for k, v in data["errors"].items()}
    extra = {k: int(v) for k, v in data.get("extra", {}).items()}
    # lost_chain repeats failures wrk already counted (or bad_body did); keep it
    # as detail only. Everything else is a distinct failed request.
    counted = sum(errors.values()) + extra.get("bad_body", 0)
    lat = data["latency_us"]
    return RunSample(
        requests=int(data["requests"]),
        seconds=float(data["duration_us"]) / 1e6,
        p50_ms=float(lat["p50"]) / 1000,
        p95_ms=float(lat["p95"]) / 1000,
        p99_ms=float(lat["p99"]) / 1000,
        max_ms=float(lat["max"]) / 1000,
        errors=counted,
        error_detail={**errors, **extra},
    )


@dataclass(frozen=True)
class WrkRun:
    sample: RunSample
    cpu: CpuSplit
    stdout: str


def run(
    *,
    port: int,
    script: str,
    input_path: Path,
    seconds: float,
    connections: int,
    threads: int,
    meter: CpuMeter,
    expect: str = "",
    out_path: Path | None = None,
) -> WrkRun:
    """One wrk run against 127.0.0.1:port; CPU of each group is sampled around it."""
    cmd = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{max(connections, threads)}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_DIR / script),
        f"http://127.0.0.1:{port}",
    ]
    env = {
        **os.environ,
        "BENCH_INPUT": str(input_path),
        "BENCH_THREADS": str(threads),
        "BENCH_EXPECT": expect,
        "BENCH_OUT": str(out_path or ""),
    }
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        children_before = _children_cpu()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        before = meter.snapshot()
        try:
            # wrk stops itself after -d; the margin covers start-up and done().
            proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise WrkError(f"wrk did not finish within {seconds + 30:.0f}s") from None
        after = meter.snapshot()
        # wrk has been reaped, so /proc no longer has it; its CPU now sits in
        # our children's times, and it is the only child that exits meanwhile.
        wall = max(1e-6, after.at - before.at)
        loadgen = max(0.0, _children_cpu() - children_before) / wall
        cpu = meter.split(before, after, loadgen)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}: {stderr.strip()[-2000:]}")
    return WrkRun(sample=parse_output(stdout), cpu=cpu, stdout=stdout)


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system
