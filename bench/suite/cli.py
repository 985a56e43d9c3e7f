"""The benchmark suite behind ``make bench``: our server and both baselines, in one run.

    .venv/bin/python bench/run.py               # the whole suite -> bench/results.md
    .venv/bin/python bench/run.py --quick       # every scenario, shortened: a smoke test of the harness
    .venv/bin/python bench/run.py --only burst --servers ours,naive
    .venv/bin/python bench/run.py --only redis  # ours on SQLite, on PostgreSQL + Redis, 2 workers on both
    .venv/bin/python bench/run.py --only joinstorm  # 50,000 sockets join 500 rooms over 3 workers + Redis
    .venv/bin/python bench/run.py --only search  # search latency over 1,000,000 messages, SQLite and PostgreSQL

For every scenario, each server is started fresh (its own process, free port,
throwaway history), driven by the project's load tester (``python -m
chat.loadtest``) with the same options, and stopped. Besides the load tester's
own report, this harness reads the server's CPU time (utime + stime from
``/proc/PID/stat``, summed over the server process and every process below it)
and RSS (``VmRSS``) before and after each run and samples them during it, so CPU
per delivery is computed the same way for all servers. It also samples the load
generator's CPU, to show when the generator rather than the server was the
limit. A run of only some scenarios rewrites only their sections of the results
file and keeps the others' text. bench/README.md explains the suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from .harness import Harness
from .params import SCENARIOS, Suite
from .proc import raise_fd_limit
from .report.document import results_text, suite_commands
from .report.model import Report, load_saved
from .scenarios import run_suite
from .servers import OUT, ROOT, SERVERS, python

RESULTS = ROOT / "bench" / "results.md"
# A 1-minute load average above this before the suite means something else is using the CPUs.
BUSY_MACHINE_LOAD = 0.5


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer sockets: a smoke test of the harness")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help="scenarios to run, comma-separated; the results file keeps the other sections' text [%(default)s]",
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="servers to run, comma-separated [%(default)s]")
    parser.add_argument("--repeat", type=int, help="runs of the burst and of each fixed load; tables show medians [3]")
    parser.add_argument(
        "--loadtest", default=f"{shlex.join(python())} -m chat.loadtest", help="the load tester's command [%(default)s]"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="seconds each run may wait for other work on the machine to calm down; 0: don't [%(default)s]",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="the markdown file to write [bench/results.md]")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RUNS.json",
        help="run nothing: rewrite the markdown from the bench/out/*-runs.json an earlier suite saved",
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        report = load_saved(args.render)
        args.output.write_text(results_text(report, suite_commands(report.runs), args.output))
        print(f"wrote {args.output}")
        return 0

    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    nofile_hard = raise_fd_limit()
    servers = [SERVERS[s.strip()] for s in args.servers.split(",") if s.strip()]
    suite = Suite.quick() if args.quick else Suite()
    if args.repeat is not None:
        suite = dataclasses.replace(suite, repeat=max(1, args.repeat))
    started_at = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    if load_before[0] > BUSY_MACHINE_LOAD:
        print(f"warning: load average {load_before[0]:.2f}: other work on this machine will skew the figures")
    harness = Harness(shlex.split(args.loadtest), started_at.strftime("%Y%m%d-%H%M%S"), args.quiet_wait)
    # The hold target is judged against this machine's limit, also when the saved runs are rendered elsewhere.
    harness.extra["nofile_hard"] = nofile_hard
    began = time.monotonic()
    run_suite(harness, suite, servers, only)
    took = time.monotonic() - began
    print(f"suite done in {took:.0f} s\n")

    report = Report(harness.runs, suite, servers, started_at, load_before, took, only, harness.extra)
    text = results_text(report, suite_commands(harness.runs), args.output)
    args.output.write_text(text)
    saved = OUT / f"{harness.tag}-runs.json"
    saved.write_text(json.dumps(report.saved(), indent=1))
    print(text)
    print(f"saved every figure in {saved.relative_to(ROOT)}")
    print(f"wrote {args.output}")
    failed = any(r.error is not None for r in harness.runs) or "redis_error" in harness.extra
    failed = failed or "joinstorm_error" in harness.extra
    engines = harness.extra.get("search", {}).get("engines", {})
    failed = failed or any(e.get("error") or e.get("mismatches") for e in engines.values())
    return 1 if failed else 0
