"""CPU time and peak memory of processes, read from /proc (Linux).

CPU is sampled before and after a phase; the difference over the events of the phase gives
CPU seconds per 1,000 events, which shows which process saturates (2 cores give 2 CPU
seconds per wall second).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
OTHERS = "other processes"
IOWAIT = "disk wait (iowait)"


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid`; None when it is gone or unreadable."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after its closing ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the most resident memory the process ever had."""
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def children_of(parent: int) -> list[int]:
    pids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            pids.append(int(entry.name))
    return pids


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass(frozen=True)
class ProcessGroup:
    """Named processes whose CPU is added up, found again at each sample (backends come and
    go); `pids` returns the current members."""

    name: str
    pids: Callable[[], Iterable[int]]
    note: str = ""


Sample = dict[str, dict[int, float]]


def sample(groups: Iterable[ProcessGroup]) -> Sample:
    out: Sample = {}
    for group in groups:
        readings = {pid: cpu_seconds(pid) for pid in group.pids()}
        out[group.name] = {pid: cpu for pid, cpu in readings.items() if cpu is not None}
    return out


def cpu_used(before: Sample, after: Sample) -> dict[str, float]:
    """CPU seconds each group used between two samples. A process that ended meanwhile is
    missing from `after` and its last part is lost: the groups sampled here live throughout
    a phase (service processes, the broker, the projection's connections)."""
    used = {}
    for name, readings in after.items():
        earlier = before.get(name, {})
        used[name] = sum(cpu - earlier.get(pid, 0.0) for pid, cpu in readings.items())
    return used


def pid_from_file(path: Path) -> int | None:
    """The first line of a pid file (Kafka's, PostgreSQL's postmaster.pid) if it is alive."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if (PROC / str(pid)).exists() else None


def machine_seconds() -> tuple[float, float]:
    """(busy, iowait): CPU seconds all cores spent working, and idle waiting for the disk,
    since boot (/proc/stat)."""
    fields = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS, ticks[4] / CLOCK_TICKS


class CpuMeter:
    """CPU seconds of each group from now on, plus the rest of the machine's load (other users'
    tests compete for the same cores) and the time cores sat waiting for the disk."""

    def __init__(self, groups: list[ProcessGroup]) -> None:
        self.groups = groups
        self.started = time.monotonic()
        self.before = sample(groups)
        self.machine = machine_seconds()

    def used(self) -> dict[str, float]:
        used = cpu_used(self.before, sample(self.groups))
        busy, iowait = machine_seconds()
        used[OTHERS] = max(0.0, busy - self.machine[0] - sum(used.values()))
        used[IOWAIT] = iowait - self.machine[1]
        return used

    def cores(self) -> dict[str, float]:
        """Average cores each group kept busy since the meter started."""
        elapsed = time.monotonic() - self.started
        return {name: round(cpu / elapsed, 2) for name, cpu in self.used().items()}
