"""The results file: its preamble, its sections in order, and how a partial run merges into it."""

from __future__ import annotations

import os
import platform
import resource
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..params import label_of
from ..runs import Run
from ..servers import ALL_SCALE_CONFIGS
from ..targets import targets_section
from ..text import GENERATOR_BUSY, OTHERS_NOTED
from .fanout import burst_section, loads_section
from .joinstorm import joinstorm_section
from .merge import PARTIAL_NOTE, merge_partial
from .scaling import scale_section
from .search import HEADING as SEARCH_HEADING
from .search import search_section
from .slow import slow_section
from .sockets import hold_section, idle_section

if TYPE_CHECKING:
    from .model import Report

# Issue 11 put the database in it: SQLite, and PostgreSQL + Redis in one process and in two.
SCALING_HEADING = "6. Scaling out: the database, Redis and worker processes"


def machine() -> dict[str, str]:
    import tornado
    import websockets

    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "nproc": nproc or str(os.cpu_count()),
        "CPU": model,
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "Tornado": tornado.version,
        "websockets": websockets.version.version,
        "RLIMIT_NOFILE hard limit per process": f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}",
    }


def sections(report: Report, commands: Sequence[str]) -> list[tuple[str, tuple[str, ...], str]]:
    """``(heading, the scenarios it shows, body)`` for every section after the preamble.

    A run of only some scenarios rewrites the sections whose scenarios all ran, and keeps the
    others' text from the results file (see :func:`merge_partial`).
    """
    suite = ("burst", "loads", "idle", "hold", "slow")
    return [
        ("Targets", suite, targets_section(report)),
        ("1. Burst: server CPU per delivery", ("burst",), burst_section(report)),
        ("2. Fixed offered loads", ("loads",), loads_section(report)),
        ("3. Memory per idle socket", ("idle",), idle_section(report)),
        ("4. Most sockets held", ("hold",), hold_section(report)),
        ("5. Slow consumer", ("slow",), slow_section(report)),
        (SCALING_HEADING, ("redis",), scale_section(report)),
        ("7. A join storm over worker processes", ("joinstorm",), joinstorm_section(report)),
        (SEARCH_HEADING, ("search",), search_section(report)),
        ("Reading the columns", (), columns_text(report)),
        ("Commands", suite, commands_text(report, commands)),
    ]


def fresh_headings(report: Report) -> list[str]:
    return [heading for heading, needs, _ in sections(report, []) if set(needs) <= set(report.only)]


def build(report: Report, commands: Sequence[str]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`.venv/bin/python bench/run.py`) on {report.started:%Y-%m-%d %H:%M} UTC;"
        f" every figure comes from that one run ({report.took_s / 60:.0f} minutes), every server side by"
        " side. bench/README.md describes the suite.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) + ".",
        # Other work on the machine skews every figure: say how busy it was.
        "Load average (1, 5, 15 min) before the suite started: "
        + ", ".join(f"{x:.2f}" for x in report.load_before)
        + ".",
        "",
    ]
    for heading, _needs, body in sections(report, commands):
        lines += [f"## {heading}", "", body, ""]
    return "\n".join(lines)


def partial_note(report: Report) -> str:
    """The line a partial run adds to the results file's preamble."""
    rewrote = [h for h, needs, _ in sections(report, []) if needs and set(needs) <= set(report.only)]
    return (
        f"{PARTIAL_NOTE} `--only {','.join(report.only)}` on {report.started:%Y-%m-%d %H:%M} UTC"
        f" ({report.took_s / 60:.1f} minutes; load average before it "
        + ", ".join(f"{x:.2f}" for x in report.load_before)
        + ") rewrote "
        + (", ".join(f"*{h}*" for h in rewrote) or "nothing")
        + "; every other section is from the run above."
    )


def columns_text(report: Report) -> str:
    return "\n".join(
        [
            "- *server busiest s*: the server's CPU use over its busiest second of the run, sampled by the"
            " harness from /proc (1.00 = one core: these servers are single-threaded, so 1.00 is saturated).",
            "- *generator busiest s*: the same for the busiest of the load generator's processes; at"
            f" {GENERATOR_BUSY} or more the load generator itself may have been the limit. *generator µs/delivery*"
            " is the load tester's own CPU per delivery received, over all its processes.",
            "- *lost / dup / ooo*: deliveries lost, duplicated and out of order, as the load tester accounts them"
            " (every member must receive every message of its room once, in seq order); a delivery still"
            " missing when the drain ends counts as lost.",
            "- *errors*: the harness's notes (a failed run, a killed load tester, a server's non-zero exit,"
            f" other processes busy on the machine: {OTHERS_NOTED} cores or more on average during the run)"
            " and the load tester's errors by kind.",
        ]
    )


def commands_text(report: Report, commands: Sequence[str]) -> str:
    return "\n".join(
        [
            "Servers, each started fresh for every run from the repository root (`P` is a free port, `TMP` a"
            " scratch directory):",
            "",
            "```",
            *[shlex.join(kind.argv(0, Path("TMP"))).replace("--port 0", "--port P") for kind in report.servers],
            "```",
            "",
            "Load-tester runs, in order (`URL` is `ws://127.0.0.1:P/ws`, `PID` the server's process id):",
            "",
            "```",
            *commands,
            "```",
        ]
    )


def results_text(report: Report, commands: Sequence[str], output: Path) -> str:
    """The results file's new text: all of it after a full run; after a partial one, the sections it
    rewrote merged into the file's existing text."""
    text = build(report, commands)
    if report.partial and output.exists():
        text = merge_partial(output.read_text(), text, fresh_headings(report), partial_note(report))
    return text


def suite_commands(runs: Iterable[Run]) -> list[str]:
    """The Commands section's load-tester lines; the redis scenario lists its own in its section."""
    return [command_line(r) for r in runs if r.server not in ALL_SCALE_CONFIGS and not r.load.startswith("joinstorm-")]


def command_line(run: Run) -> str:
    words = list(run.command)
    if not words:
        return f"# {run.load}, {label_of(run.server)}: not run ({run.error})"
    for i, word in enumerate(words):
        if word.startswith("ws://"):
            words[i] = "URL"
        elif i and words[i - 1] == "--server-pid":
            words[i] = "PID"
    return f"# {run.load}, {label_of(run.server)}\n{shlex.join(words)}"
