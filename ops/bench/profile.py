"""Sample the service's workers with py-spy while a scenario runs (``--profile``).

py-spy runs with ``--nonblocking`` (it does not stop the worker to read its
stack), so the profiled run is barely slower than a normal one; its figures
are not reported as results. The collapsed stacks are kept, and a summary of
the hottest functions (self and inclusive share of samples) is written next
to them, so the report can say what limited a scenario.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(
    pids: Iterable[int], seconds: float, out_dir: Path, label: str
) -> list[tuple[Path, subprocess.Popen[bytes]]]:
    exe = py_spy()
    if exe is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for pid in pids:
        path = out_dir / f"profile-{label}-{pid}.folded"
        cmd = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(path),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append((path, proc))
    return started


def finish(started: list[tuple[Path, subprocess.Popen[bytes]]], timeout: float) -> list[Path]:
    paths = []
    for path, proc in started:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if path.exists():
            paths.append(path)
    return paths


def summarize(folded: Iterable[str], top: int = 25) -> str:
    """Self and inclusive sample shares per function from collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in folded:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    if total == 0:
        return "no samples\n"
    lines = [f"{total} samples", "", "self%   function"]
    lines += [f"{100 * c / total:5.1f}   {f}" for f, c in own.most_common(top)]
    lines += ["", "incl%   function"]
    lines += [f"{100 * c / total:5.1f}   {f}" for f, c in incl.most_common(top)]
    return "\n".join(lines) + "\n"


def write_summary(paths: list[Path], out: Path) -> None:
    lines: list[str] = []
    for p in paths:
        lines += p.read_text(errors="replace").splitlines()
    out.write_text(summarize(lines))
