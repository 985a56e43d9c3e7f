"""``python -m chat.loadtest``: run, print the report, write JSON and the plot; exit 1 when the SLO is missed."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from chat.loadtest import report as reporting
from chat.loadtest.limits import raise_open_files_limit
from chat.loadtest.options import LoadConfig, parse_args
from chat.loadtest.procs import WorkerDied
from chat.loadtest.run import Coordinator
from chat.loadtest.spawn import ServerFailed

EXIT_OK = 0
EXIT_SLO_MISSED = 1
EXIT_NO_RUN = 2  # the run could not be made (server would not start, no client connected)


async def run(config: LoadConfig, stderr: TextIO = sys.stderr) -> tuple[reporting.Report, HdrHistogram]:
    """Run a load test: its JSON report and merged latency histogram. The async entry point."""
    data = await Coordinator(config, stderr).run()
    return reporting.build(data)


def publish(config: LoadConfig, report: reporting.Report, histogram: HdrHistogram, stdout: TextIO) -> None:
    """Print the report; write the JSON and the plot when asked."""
    if config.json is not None:
        path = Path(config.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if config.plot is not None:
        from chat.loadtest import plot  # matplotlib is slow to import: only when asked

        Path(config.plot).parent.mkdir(parents=True, exist_ok=True)
        plot.draw(report, histogram, config.plot)
    stdout.write(reporting.render(report) + "\n")
    stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raise_open_files_limit()
    try:
        report, histogram = asyncio.run(run(config))
    except (ServerFailed, WorkerDied) as exc:
        print(f"chat.loadtest: {exc}", file=sys.stderr)
        return EXIT_NO_RUN
    except KeyboardInterrupt:
        print("\nchat.loadtest: interrupted", file=sys.stderr)
        return 130
    publish(config, report, histogram, sys.stdout)
    if report["connect"]["connected"] == 0:
        print("chat.loadtest: no client could connect", file=sys.stderr)
        return EXIT_NO_RUN
    return EXIT_OK if reporting.passed(report) else EXIT_SLO_MISSED
