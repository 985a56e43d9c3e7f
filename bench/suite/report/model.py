"""What the report is built from: the runs, the suite's parameters, and what the scenarios noted;
saved beside the results as JSON, and read back for ``--render``."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..params import SCENARIOS, JoinStorm, SearchBench, Suite
from ..runs import Run
from ..servers import SERVERS, ServerKind


class Report:
    """bench/results.md from the runs: medians where a scenario ran more than once."""

    def __init__(
        self,
        runs: Sequence[Run],
        suite: Suite,
        servers: Sequence[ServerKind],
        started: datetime.datetime,
        load_before: tuple[float, float, float],
        took_s: float,
        only: Sequence[str] = SCENARIOS,
        extra: dict[str, Any] | None = None,
    ):
        self.runs = runs
        self.load_before = load_before
        self.took_s = took_s
        self.suite = suite
        self.servers = servers
        self.started = started
        self.only = [s for s in SCENARIOS if s in only]
        self.extra = extra or {}

    def saved(self) -> dict[str, Any]:
        """Everything the markdown is built from, for ``--render``."""
        return {
            "started": self.started.isoformat(),
            "load_before": list(self.load_before),
            "took_s": self.took_s,
            "suite": dataclasses.asdict(self.suite),
            "servers": [kind.key for kind in self.servers],
            "only": self.only,
            "extra": self.extra,
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }

    @property
    def partial(self) -> bool:
        """Only some scenarios ran: the results file keeps the other sections' text."""
        return set(self.only) != set(SCENARIOS)

    def of(self, load: str, server: str) -> list[Run]:
        return [r for r in self.runs if r.load == load and r.server == server]


def load_saved(path: Path) -> Report:
    """The Report of a suite saved by :meth:`Report.saved`."""
    data = json.loads(path.read_text())
    suite_fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["suite"].items()}
    if isinstance(suite_fields.get("joinstorm"), dict):
        storm = suite_fields["joinstorm"]
        storm_fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in storm.items()}
        suite_fields["joinstorm"] = JoinStorm(**storm_fields)
    if isinstance(suite_fields.get("search"), dict):
        search: dict[str, Any] = dict(suite_fields["search"])
        search["bands"] = tuple(tuple(band) for band in search["bands"])
        suite_fields["search"] = SearchBench(**search)
    runs = [Run(**r) for r in data["runs"]]
    report = Report(
        runs,
        Suite(**suite_fields),
        [SERVERS[key] for key in data["servers"]],
        datetime.datetime.fromisoformat(data["started"]),
        (data["load_before"][0], data["load_before"][1], data["load_before"][2]),
        float(data["took_s"]),
        data.get("only", SCENARIOS),
        data.get("extra", {}),
    )
    return report
