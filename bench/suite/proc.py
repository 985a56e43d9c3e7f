"""Readings from /proc: CPU time and memory of a process and everything below it, and of the machine.

Every figure the harness reports about a server comes from here, read the same way for every
server, so the servers compare fairly.
"""

from __future__ import annotations

import os
import resource
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> int:
    """Raise our soft RLIMIT_NOFILE to the hard one; every process we start inherits it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and every process below it: utime + stime of each live one, plus the
    cutime + cstime each holds for children it has reaped (a worker that died and was replaced).

    For a server without children this is :func:`cpu_seconds` (its cutime and cstime do not move).
    """
    total = 0.0
    for i, proc in enumerate(descendants(pid)):
        try:
            with open(f"/proc/{proc}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            if i == 0:
                raise
            continue  # a child that exited meanwhile
        total += sum(int(x) for x in fields[11:15]) / CLK_TCK
    return total


def tree_status_bytes(pid: int, key: str) -> int:
    """:func:`status_bytes` summed over ``pid`` and every process below it (pages shared after a fork
    count once per process)."""
    total = 0
    for i, proc in enumerate(descendants(pid)):
        try:
            total += status_bytes(proc, key)
        except (FileNotFoundError, ProcessLookupError):
            if i == 0:
                raise
    return total


def status_bytes(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/PID/status (VmRSS, VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def machine_busy_seconds() -> float:
    """CPU time spent on anything but idle and iowait, all CPUs together, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    found = [pid]
    for parent in found:
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    found.extend(int(child) for child in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def machine_busy_cores(seconds: float) -> float:
    """Cores busy on the whole machine over the next ``seconds``."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds
