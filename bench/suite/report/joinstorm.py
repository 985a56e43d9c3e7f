"""Section 7: the join storm over worker processes, and what each rate's figures say."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..figures import refusals, welcomed
from ..params import SOURCE_IPS, JoinStorm
from ..runs import Run
from ..text import fmt, table
from .scaling import scale_command, server_command

if TYPE_CHECKING:
    from .model import Report


def joinstorm_verdict(run: Run, storm: JoinStorm) -> str:
    """What one rate's figures say, in words."""
    attempted = int(run.get("connect", "attempted") or 0)
    refused = refusals(run)
    if run.report is None:
        return f"at {run.offered_per_s:,}/s the run failed: {run.error}"
    if attempted and run.sockets_held == attempted and not any(refused.values()):
        return f"at {run.offered_per_s:,}/s every one of the {attempted:,} sockets connected and joined"
    parts = [
        f"at {run.offered_per_s:,}/s {welcomed(run):,} of {attempted or storm.sockets:,} sockets connected and"
        f" {run.sockets_held:,} joined"
    ]
    hard = refused["unavailable"] + refused["1013"]
    parts.append(
        "none was refused as `unavailable` or closed 1013"
        if not hard
        else f"{refused['unavailable']:,} were refused `unavailable` and {refused['1013']:,} closed 1013"
    )
    if refused["timeouts"] or refused["other"]:
        parts.append(f"{refused['timeouts']:,} timed out and {refused['other']:,} failed otherwise")
    wall = run.wall_s or 1.0
    busy = (run.server_cpu_s + run.generator_cpu_s + run.redis_cpu_s) / wall + run.others_cores
    parts.append(
        f"over the run the server's processes used {run.server_cpu_s / wall:.2f} cores on average (busiest second"
        f" {run.server_busiest:.2f}), the load generator {run.generator_cpu_s / wall:.2f}, Redis"
        f" {run.redis_cpu_s / wall:.2f} and other work {run.others_cores:.2f}: {busy:.2f} of {os.cpu_count()} cores"
    )
    return "; ".join(parts)


def joinstorm_section(report: Report) -> str:
    storm = report.suite.joinstorm
    runs = [r for r in report.runs if r.load.startswith("joinstorm-")]
    if not runs:
        return "Not run" + (f": {report.extra['joinstorm_error']}." if report.extra.get("joinstorm_error") else ".")
    rows = []
    for run in runs:
        refused = refusals(run)
        rows.append(
            [
                fmt(run.offered_per_s),
                fmt(run.get("connect", "attempted")),
                fmt(welcomed(run)),
                fmt(run.sockets_held),
                *(fmt(refused[k]) for k in ("unavailable", "1013", "timeouts", "other")),
                f"{fmt(run.get('connect', 'p50_ms'))} / {fmt(run.get('connect', 'p99_ms'))}",
                fmt(run.server_cpu_s, 1),
                f"{run.server_busiest:.2f}",
                fmt(run.generator_cpu_s, 1),
                fmt(run.redis_cpu_s, 1),
                f"{run.others_cores:.2f}",
                fmt(run.wall_s, 0),
            ]
        )
    lines = [
        f"{storm.sockets:,} sockets open and join {storm.rooms} rooms (round-robin) at each connect rate, over"
        f" `server.py --workers {storm.workers} --redis` on one Redis and a PostgreSQL `--db` (a fresh database per"
        " rate, as in section 6; before issue 11, SQLite `:memory:`: the commands below say which), from"
        f" {storm.procs} load-generating processes"
        f" spread over {SOURCE_IPS}; then held {storm.hold_s:g} s and closed. A socket is *connected* once it"
        " has `welcome` and *joined* once it has `joined`, both within the load tester's 15 s; *unavailable* is a"
        " join answered `unavailable`, *1013* a socket closed at open because its name could not be checked,"
        " *timeouts* a connect or join not answered in 15 s. Server CPU is over every worker process (the supervisor's"
        " process tree), around the whole load-tester run.",
        "",
        table(
            [
                "connections/s",
                "attempted",
                "connected",
                "joined",
                "unavailable",
                "1013",
                "timeouts",
                "other",
                "connect p50 / p99 ms",
                "server CPU s",
                "server busiest s",
                "generator CPU s",
                "Redis CPU s",
                "others (cores)",
                "wall s",
            ],
            rows,
        ),
        "",
        *(f"- {joinstorm_verdict(run, storm)}." for run in runs),
    ]
    notes = [f"- at {r.offered_per_s:,}/s the server logged: " + "; ".join(r.log_notes) for r in runs if r.log_notes]
    lines += notes or ["- The server logged no warning or error."]
    lines += ["", "Commands (`URL` is the server's `ws://127.0.0.1:P/ws`, `METRICS` the harness's `/metrics`):", ""]
    lines += ["```", *dict.fromkeys(server_command(storm.config, [r]) for r in runs)]
    lines += [scale_command(r) for r in runs if r.command]
    lines += ["```"]
    return "\n".join(lines)
