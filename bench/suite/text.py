"""Figures as text: numbers, markdown tables, and the notes beside a run's figures."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any

from .figures import median
from .runs import Run
from .servers import STOP_TIMEOUT_S

# A load-generating process this busy (cores, over a 1 s window) may itself be the limit.
GENERATOR_BUSY = 0.9
# Other processes using this many cores on average during a run are noted beside its figures.
OTHERS_NOTED = 0.2


def fmt(value: Any, digits: int = 0, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    number = float(value) * scale
    return f"{number:,.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def loss(runs: Sequence[Run]) -> str:
    return " / ".join(fmt(median(r.get("deliveries", k) for r in runs)) for k in ("lost", "duplicated", "out_of_order"))


def errors(runs: Sequence[Run]) -> str:
    notes: list[str] = []
    for r in runs:
        if r.error:
            notes.append(r.error.replace("|", "/"))
        kinds = r.get("errors", "by_kind")
        if isinstance(kinds, dict):
            notes += [f"{k}: {v}" for k, v in kinds.items() if v]
        if r.server_exit == -signal.SIGKILL:
            notes.append(f"server still running {STOP_TIMEOUT_S:g} s after SIGTERM: killed")
        elif r.server_exit not in (0, None):
            notes.append(f"server exit {r.server_exit}")
        notes += [f"server log: {note}" for note in r.log_notes]
    busiest_others = max((r.others_cores for r in runs), default=0.0)
    if busiest_others >= OTHERS_NOTED:
        notes.append(f"other processes on the machine used up to {busiest_others:.2f} cores meanwhile")
    return "; ".join(dict.fromkeys(notes)) or "none"
