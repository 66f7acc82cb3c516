"""CPU and memory of the processes under test, read from /proc (Linux only).

CPU split: for each group (service, Postgres, load generator) we add
utime+stime of every live process in the group's tree plus the root's
cutime+cstime, which the kernel credits with the time of children that have
exited and been reaped (a recycled pool connection's backend, a finished
uvicorn worker). A before/after difference over a run therefore counts work
of processes that started or ended during it. "other" is the process time of
the whole machine (/proc/stat user+nice+system) minus the three groups: the
harness itself and anything else on the box; a large "other" marks a
disturbed run. Interrupt time (mostly softirq for loopback TCP) belongs to no
process and is reported on its own as "irq".

Memory per Postgres backend: ``Anonymous`` from /proc/<pid>/smaps_rollup,
i.e. the backend's private heap (catalog and relation caches, plan caches,
work_mem) without the shared_buffers segment, which every backend maps and
which RSS would count again for each one. ``Pss`` is reported too: it
charges each backend its fair share of shared pages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ops.bench.stats import CpuSplit, percentile

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcTimes:
    ppid: int
    own: int  # utime + stime, clock ticks
    children: int  # cutime + cstime of reaped children, clock ticks


def read_stat(pid: int) -> ProcTimes | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return parse_stat(raw)


def parse_stat(raw: str) -> ProcTimes:
    """Fields after the command name, which may itself hold spaces and parentheses."""
    rest = raw[raw.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); fields 4, 14..17 are ppid, utime, stime, cutime, cstime.
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return ProcTimes(ppid=ppid, own=utime + stime, children=cutime + cstime)


def all_stats() -> dict[int, ProcTimes]:
    out: dict[int, ProcTimes] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            st = read_stat(int(entry.name))
            if st is not None:
                out[int(entry.name)] = st
    return out


def tree(root: int, stats: dict[int, ProcTimes]) -> set[int]:
    """root and all its live descendants."""
    kids: dict[int, list[int]] = {}
    for pid, st in stats.items():
        kids.setdefault(st.ppid, []).append(pid)
    found, todo = {root}, [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found & (stats.keys() | {root})


def group_ticks(root: int, stats: dict[int, ProcTimes]) -> int:
    pids = tree(root, stats)
    total = sum(stats[p].own for p in pids if p in stats)
    if root in stats:
        total += stats[root].children
    return total


def machine_ticks() -> tuple[int, int]:
    """(process time, interrupt time) of all CPUs in jiffies, from /proc/stat.

    Process time is user + nice + system: what some process is charged for.
    Interrupt time (irq + softirq) is charged to no process; on loopback it is
    mostly the network stack carrying requests between wrk and the servers.
    Idle, iowait and steal are neither; guest time is already inside user.
    """
    values = [int(x) for x in (PROC / "stat").read_text().splitlines()[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = values
    return user + nice + system, irq + softirq


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    service: int
    postgres: int
    machine: int  # process time of the whole machine
    irq: int
    stats: dict[int, ProcTimes]


class CpuMeter:
    """Before/after CPU of the service and Postgres trees, each known by its root pid.

    The load generator is measured by the caller (see ops.bench.wrk), since it
    has exited, and left /proc, by the time the "after" snapshot is taken.
    """

    def __init__(self, *, service: int | None, postgres: int | None, cores: int) -> None:
        self.service = service
        self.postgres = postgres
        self.cores = cores

    def snapshot(self) -> CpuSnapshot:
        stats = all_stats()

        def ticks(root: int | None) -> int:
            return 0 if root is None else group_ticks(root, stats)

        machine, irq = machine_ticks()
        return CpuSnapshot(
            at=time.monotonic(),
            service=ticks(self.service),
            postgres=ticks(self.postgres),
            machine=machine,
            irq=irq,
            stats=stats,
        )

    def split(self, before: CpuSnapshot, after: CpuSnapshot, loadgen: float) -> CpuSplit:
        """CPU in cores over the interval; ``loadgen`` is already in cores."""
        wall = max(1e-6, after.at - before.at)

        def cores(a: int, b: int) -> float:
            return max(0, b - a) / CLK_TCK / wall

        service = cores(before.service, after.service)
        postgres = cores(before.postgres, after.postgres)
        busy = cores(before.machine, after.machine)
        other = max(0.0, busy - service - postgres - loadgen)
        return CpuSplit(
            service=service,
            postgres=postgres,
            loadgen=loadgen,
            other=other,
            cores=self.cores,
            noise=self._noise(before, after, wall) if other > NOISE_CORES else "",
            irq=cores(before.irq, after.irq),
        )

    def _noise(self, before: CpuSnapshot, after: CpuSnapshot, wall: float) -> str:
        """The busiest processes outside our groups, to say who disturbed a run."""
        ours: set[int] = set()
        for root in (self.service, self.postgres):
            if root is not None:
                ours |= tree(root, after.stats)
        ours.add(os.getpid())
        used = []
        for pid, st in after.stats.items():
            if pid in ours:
                continue
            prev = before.stats.get(pid)
            delta = st.own - (prev.own if prev else 0)
            if delta > 0:
                used.append((delta / CLK_TCK / wall, pid))
        used.sort(reverse=True)
        return ", ".join(f"{_comm(pid)}[{pid}] {c:.2f}" for c, pid in used[:3])


# A run where processes outside the benchmark used more than this (in cores)
# is reported as disturbed and repeated.
NOISE_CORES = 0.25


def _comm(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


# ---------------------------------------------------------------- Postgres memory


def postmaster_pid(datadir: Path) -> int | None:
    """First line of postmaster.pid, or None when the cluster is not running."""
    try:
        return int((datadir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def smaps_rollup_kib(pid: int) -> dict[str, int]:
    """Fields of /proc/<pid>/smaps_rollup in KiB (empty if the process is gone)."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return {}
    return parse_smaps_rollup(text)


def parse_smaps_rollup(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[name.strip()] = int(parts[0])
    return out


def cmdline(pid: int) -> str:
    try:
        return (
            (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def backend_pids(postmaster: int, role: str) -> list[int]:
    """Client backends of one login role: Postgres titles them "postgres: ROLE DB HOST ..."."""
    stats = all_stats()
    prefix = f"postgres: {role} "
    return sorted(
        pid
        for pid in tree(postmaster, stats)
        if pid != postmaster and cmdline(pid).startswith(prefix)
    )


def backend_memory(pids: Iterable[int]) -> dict[str, float | int]:
    """Per-backend memory in MiB: median and max of Anonymous and Pss."""
    anon, pss = [], []
    for pid in pids:
        fields = smaps_rollup_kib(pid)
        if "Anonymous" in fields:
            anon.append(fields["Anonymous"] / 1024)
            pss.append(fields.get("Pss", 0) / 1024)
    if not anon:
        return {"backends": 0}
    return {
        "backends": len(anon),
        "anonymous_mib_p50": percentile(anon, 50),
        "anonymous_mib_max": max(anon),
        "pss_mib_p50": percentile(pss, 50),
        "pss_mib_max": max(pss),
    }
