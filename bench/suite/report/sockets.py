"""Sections 3 and 4: memory per idle socket, and the most sockets one server process held."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..figures import hold_figures, hold_steps, median, nofile_hard
from ..params import FD_HEADROOM, SOURCE_IPS
from ..text import errors, fmt, table
from ..wording import hold_cap

if TYPE_CHECKING:
    from .model import Report


def idle_section(report: Report) -> str:
    rows = []
    for kind in report.servers:
        runs = report.of(report.suite.idle_key, kind.key)
        if not runs:
            continue
        rows.append(
            [
                kind.label,
                fmt(median(r.sockets_held for r in runs)),
                fmt(median(r.get("idle", "rss_bytes_before") for r in runs), 1, 1 / 2**20),
                fmt(median(r.get("idle", "rss_bytes_after") for r in runs), 1, 1 / 2**20),
                fmt(median(r.get("idle", "bytes_per_socket") for r in runs), 1, 1 / 1024),
                fmt(median(r.idle_bytes_per_socket for r in runs), 1, 1 / 1024),
                fmt(median(r.connect_cpu_ms for r in runs), 2),
                errors(runs),
            ]
        )
    s = report.suite
    return (
        f"`--scenario idle`: {s.idle_sockets:,} sockets in rooms of {s.idle_room_size}, opened at"
        f" {s.idle_ramp_per_s}/s and held {s.idle_hold_s:g} s. The load tester's figure is (server RSS once"
        " every socket is up - RSS before connecting) / sockets; the harness's is (peak RSS during the run -"
        " RSS of the fresh server) / sockets. KB = 1,024 bytes. *CPU per connect* is the server's CPU time"
        " from before the first connect until every socket is up (handshake, welcome, join, presence to the"
        " room), per socket.\n\n"
        + table(
            [
                "server",
                "sockets held",
                "RSS before MiB",
                "RSS all up MiB",
                "KB per socket (load tester)",
                "KB per socket (harness, peak)",
                "server CPU per connect ms",
                "errors",
            ],
            rows,
        )
    )


def hold_section(report: Report) -> str:
    rows = []
    most = hold_figures(report)
    for kind in report.servers:
        steps = hold_steps(report, kind.key)
        if not steps:
            continue
        ladder = ", ".join(
            f"{fmt(r.get('connect', 'attempted'))} → {fmt(r.sockets_held)}"
            + ("" if r.fully_connected else " (not all)")
            for r in steps
        )
        top = steps[-1]
        rows.append(
            [
                kind.label,
                fmt(most[kind.key]),
                ladder,
                fmt(top.get("connect", "p99_ms"), 0),
                fmt(top.get("idle", "bytes_per_socket"), 1, 1 / 1024),
                errors(steps),
            ]
        )
    hard = nofile_hard(report)
    return (
        f"Idle sockets at increasing counts, {report.suite.idle_ramp_per_s} new ones a second (rooms of"
        f" {report.suite.idle_room_size}, the client sockets spread over `--source-ips {SOURCE_IPS}` and"
        f" {report.suite.procs} load-generating processes): "
        + ", then ".join(
            [
                f"first the idle run's {report.suite.idle_sockets:,}",
                *(f"{n:,}" for n in report.suite.hold_counts),
                *(
                    [
                        "as many as the server process has file descriptors left (its limit minus those open"
                        f" once it has started, minus {FD_HEADROOM})"
                    ]
                    if report.suite.hold_max
                    else []
                ),
            ]
        )
        + "; the ladder stops at the first count not fully connected."
        + hold_cap(hard)
        + "\n\n"
        + table(
            [
                "server",
                "most sockets fully connected",
                "attempted → connected",
                "connect p99 ms (last step)",
                "KB per socket (last step)",
                "errors",
            ],
            rows,
        )
    )
