"""Sections 1 and 2: the burst and the fixed offered loads, every server side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..figures import SATURATED, burst_figures, median, steady_against_floor
from ..params import load_key
from ..servers import SERVERS
from ..targets import BURST_TARGETS, STEADY
from ..text import errors, fmt, loss, table

if TYPE_CHECKING:
    from .model import Report


def burst_section(report: Report) -> str:
    s = report.suite
    rows = []
    for kind in report.servers:
        runs = report.of("burst", kind.key)
        if not runs:
            continue
        rows.append(
            [
                kind.label,
                fmt(median(r.window_us_per_delivery for r in runs), 2),
                fmt(median(r.cpu_us_per_delivery for r in runs), 2),
                fmt(median(r.received for r in runs))
                + " / "
                + fmt(median(r.get("deliveries", "expected") for r in runs)),
                fmt(median(r.burst_per_s for r in runs)),
                loss(runs),
                fmt(median(r.get("latency_ms", "p50") for r in runs), 1),
                fmt(median(r.get("latency_ms", "p99") for r in runs), 1),
                fmt(median(r.server_rss_peak for r in runs), 0, 1 / 2**20),
                fmt(median(r.server_busiest for r in runs), 2),
                fmt(median(r.get("load_generator", "cpu_us_per_delivery") for r in runs), 1),
                fmt(median(r.generator_busiest for r in runs), 2),
                errors(runs),
            ]
        )
    deliveries = int(s.burst_rate * s.burst_duration_s * s.room_members)
    return (
        f"One room of {s.room_members:,} members; {s.burst_senders} senders send {s.burst_rate:g} messages/s in"
        f" total for {s.burst_duration_s:g} s ({deliveries:,} deliveries of {s.message_bytes}-byte messages),"
        f" then up to {s.burst_drain_s:g} s to drain. The first CPU column is the server's CPU time (utime +"
        " stime from /proc/PID/stat, read by the load tester with `--server-pid`) from the start of sending to"
        " the end of the drain, over the deliveries received: the fan-out's cost. The second is the harness's"
        " own reading of the same counters around the whole load-tester run, so it also carries connecting,"
        f" joining and closing the {s.room_members:,} sockets. *Deliveries/s* is the deliveries over the"
        " whole seconds from the start of sending to the last delivery."
        + (f" Medians of {s.repeat} runs." if s.repeat > 1 else "")
        + "\n\n"
        + table(
            [
                "server",
                "CPU µs/delivery (send + drain)",
                "CPU µs/delivery (whole run)",
                "received / expected",
                "deliveries/s (until the last)",
                "lost / dup / ooo",
                "p50 ms",
                "p99 ms",
                "peak RSS MiB",
                "server busiest s (cores)",
                "generator µs/delivery",
                "generator busiest s (cores)",
                "errors",
            ],
            rows,
        )
        + "\n\n"
        + ratios(report)
    )


def ratios(report: Report) -> str:
    """The burst's CPU per delivery, each baseline's over ours, both figures, beside the target's threshold."""
    if "ours" not in burst_figures(report):
        return ""
    lines = []
    for target in BURST_TARGETS:
        parts = []
        for i, what in ((0, "send + drain"), (1, "whole run")):
            measured = target.ratio(report, i)
            if measured is None:
                break
            parts.append(f"{fmt(measured[2], 1)}x ({what})")
        if parts:
            label = SERVERS[target.baseline].label
            lines.append(f"- {label} / ours: " + ", ".join(parts) + f"; the target is at least {target.at_least:g}x.")
    return "CPU per delivery, baseline over ours:\n\n" + "\n".join(lines)


def loads_section(report: Report) -> str:
    rows = []
    for per_s in report.suite.loads_per_s:
        for kind in report.servers:
            runs = report.of(load_key(per_s), kind.key)
            if not runs:
                continue
            rows.append(
                [
                    f"{per_s:,}/s",
                    kind.label,
                    fmt(median(r.sustained_per_s for r in runs)),
                    fmt(median(r.get("latency_ms", "p50") for r in runs), 1),
                    fmt(median(r.get("latency_ms", "p99") for r in runs), 1),
                    fmt(median(r.get("latency_ms", "max") for r in runs), 1),
                    loss(runs),
                    fmt(median(r.get("messages", "send_lag_ms", "p99") for r in runs), 1),
                    fmt(median(r.window_us_per_delivery for r in runs), 2),
                    fmt(median(r.server_busiest for r in runs), 2),
                    fmt(median(r.generator_busiest for r in runs), 2),
                    errors(runs),
                ]
            )
    s = report.suite
    return (
        f"{s.load_senders} senders send at a fixed total rate into one room of {s.room_members:,} members for"
        f" {s.load_duration_s:g} s (offered deliveries/s = rate x members), {s.message_bytes}-byte messages,"
        f" up to {s.load_drain_s:g} s to drain. Latency runs from each message's intended send time, so a"
        " server (or a load generator) that falls behind shows it; *sender lag p99* is how late the load"
        " generator itself wrote its messages against the schedule. *Sustained deliveries/s* is the median"
        " second's deliveries while sending (the first second left out): the offered rate for a server that"
        " keeps up, its capacity for one that does not."
        + (f" Medians of {s.repeat} runs, the servers interleaved." if s.repeat > 1 else "")
        + "\n\n"
        + table(
            [
                "offered",
                "server",
                "sustained deliveries/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "lost / dup / ooo",
                "sender lag p99 ms",
                "CPU µs/delivery (send + drain)",
                "server busiest s (cores)",
                "generator busiest s (cores)",
                "errors",
            ],
            rows,
        )
        + "\n\n"
        + saturation(report)
        + floor_ratios(report)
    )


def floor_ratios(report: Report) -> str:
    """Ours against the floor (a bare send() loop) and websockets, at each fixed load."""
    lines = []
    for per_s in report.suite.loads_per_s:
        steady = steady_against_floor(report, per_s)
        ws = median(r.window_us_per_delivery for r in report.of(load_key(per_s), "websockets"))
        if not steady.ours:
            continue
        parts = []
        if steady.ratio is not None:
            part = f"ours / floor {steady.ratio:.2f}x ({steady.ours:.2f} vs {steady.floor:.2f} µs)"
            if steady.clumped:
                part += (
                    f", but the load generator fell behind (sender lag p90 up to {steady.lag_ms:,.0f} ms, against"
                    f" {steady.spacing_ms:g} ms between messages), so messages arrived in clumps"
                )
            if per_s == STEADY.per_s:
                clumped = " (clumped)" if steady.clumped else ""
                part += f"; the target is at most {STEADY.at_most:g}x: {STEADY.verdict(steady)}{clumped}"
            parts.append(part)
        if ws:
            parts.append(f"websockets broadcast() / ours {ws / steady.ours:.2f}x")
        if parts:
            lines.append(f"- {per_s:,}/s: " + "; ".join(parts))
    if not lines:
        return ""
    return (
        "\n\nCPU per delivery (send + drain) against the floor, a bare loop of one `send()` per member with"
        " the frame built once (`bench/floor.py`):\n\n" + "\n".join(lines)
    )


def saturation(report: Report) -> str:
    """Which servers could not sustain which offered loads."""
    fell_short = []
    for kind in report.servers:
        for per_s in report.suite.loads_per_s:
            sustained = median(r.sustained_per_s for r in report.of(load_key(per_s), kind.key))
            if sustained is not None and sustained < SATURATED * per_s:
                fell_short.append(f"{kind.label} at {per_s:,}/s offered (sustained {sustained:,.0f}/s)")
    if not fell_short:
        return f"Every server sustained every offered load (at least {SATURATED:.0%} of it)."
    return f"Saturated (sustained less than {SATURATED:.0%} of the offered load): " + "; ".join(fell_short) + "."
