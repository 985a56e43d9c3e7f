"""CPU time, memory and open files of a process and every process below it, from ``/proc``.

Under ``server.py --workers N`` the server is a supervisor and N forked
workers: one pid is a fraction of it. Both ``/metrics`` (under --workers) and
the load tester's ``--server-pid`` add up the whole tree with this module.

CPU is utime + stime of each live process plus the cutime + cstime it holds
for children it has reaped, so a worker that died and was replaced still
counts, and the total never goes backwards. Memory is the sum of each
process's resident set: pages shared after a fork count once per process, as
``ps`` shows them (a change in memory, such as per-socket growth, is exact).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

# Fields of /proc/PID/stat counted from the one after the command name (field 3, state, is 0):
# see proc(5), where utime is field 14 of the whole line.
_UTIME, _STIME, _CUTIME, _CSTIME, _STARTTIME, _VSIZE, _RSS = 11, 12, 13, 14, 19, 20, 21


@dataclass(frozen=True, slots=True)
class Usage:
    processes: int
    cpu_seconds: float
    rss_bytes: int
    vms_bytes: int
    open_fds: int | None  # None when a process's fd directory may not be read (another user's)
    start_ticks: int  # the root's start, in clock ticks after boot


@dataclass(frozen=True, slots=True)
class Stat:
    cpu_ticks: int  # utime + stime + cutime + cstime
    start_ticks: int
    vms_bytes: int
    rss_bytes: int


def parse_stat(text: str, page_bytes: int = PAGE_BYTES) -> Stat:
    """The figures we use from the text of ``/proc/PID/stat``."""
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    cpu = sum(int(fields[i]) for i in (_UTIME, _STIME, _CUTIME, _CSTIME))
    return Stat(cpu, int(fields[_STARTTIME]), int(fields[_VSIZE]), int(fields[_RSS]) * page_bytes)


def descendants(pid: int, proc: Path = PROC) -> list[int]:
    """``pid`` and every live process below it, parents before children.

    From each thread's ``children`` file (proc(5); kernels built with CONFIG_PROC_CHILDREN, as
    every mainstream distribution's is): one read per process, where scanning every /proc/PID
    for its parent would read every process on the machine.
    """
    found = [pid]
    for parent in found:
        try:
            tasks = proc / str(parent) / "task"
            for task in os.listdir(tasks):
                found.extend(int(child) for child in (tasks / task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
    return found


def tree_usage(
    pid: int, proc: Path = PROC, ticks_per_second: int = TICKS_PER_SECOND, page_bytes: int = PAGE_BYTES
) -> Usage:
    """The sums over ``pid`` and its descendants; ProcessLookupError when ``pid`` itself is gone."""
    processes = 0
    ticks = rss = vms = 0
    fds: int | None = 0
    start = 0
    for i, each in enumerate(descendants(pid, proc)):
        try:
            stat = parse_stat((proc / str(each) / "stat").read_text(), page_bytes)
        except (FileNotFoundError, ProcessLookupError) as exc:
            if i == 0:
                raise ProcessLookupError(pid) from exc
            continue  # a child that exited between the listing and now
        if i == 0:
            start = stat.start_ticks
        processes += 1
        ticks += stat.cpu_ticks
        rss += stat.rss_bytes
        vms += stat.vms_bytes
        try:
            fds = None if fds is None else fds + len(os.listdir(proc / str(each) / "fd"))
        except PermissionError:
            fds = None
        except (FileNotFoundError, ProcessLookupError):
            pass
    return Usage(processes, ticks / ticks_per_second, rss, vms, fds, start)
