"""CPU time of processes and of the whole machine, read from /proc (Linux), for the
benchmarks. Each figure is None where /proc cannot be read."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int, *, with_children: bool = False) -> float | None:
    """User and system CPU seconds of a process (all its threads), and with `with_children`
    of its children too (a node's crypto workers); None if the process cannot be read."""
    pids = [pid]
    if with_children:
        try:
            pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            pass
    ticks = os.sysconf("SC_CLK_TCK")
    total = None
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return total


def machine_idle_seconds() -> float | None:
    """Idle CPU seconds of the whole machine since boot, all cores together."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")  # idle + iowait
