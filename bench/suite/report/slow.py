"""Section 5: the slow consumer, ours alone, without and with a member that stops reading."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..text import errors, fmt, loss, table

if TYPE_CHECKING:
    from .model import Report


def slow_section(report: Report) -> str:
    s = report.suite
    rows = []
    for key, label in (("slow-0", "no stalled reader"), ("slow-1", "1 stalled reader")):
        for r in report.of(key, "ours"):
            rows.append(
                [
                    label,
                    fmt(r.received) + " / " + fmt(r.get("deliveries", "expected")),
                    loss([r]),
                    fmt(r.get("deliveries", "gaps")),
                    fmt(r.get("deliveries", "late")),
                    fmt(r.get("latency_ms", "p50"), 1),
                    fmt(r.get("latency_ms", "p99"), 1),
                    fmt(r.server_rss_before / 2**20, 1),
                    fmt(r.server_rss_peak / 2**20, 1),
                    errors([r]),
                ]
            )
    if not rows:
        return "Not measured in this run."
    return "\n".join(
        [
            f"Ours only (the baselines have no slow-consumer policy: they buffer without bound). One room of"
            f" {s.slow_members} members; 5 senders send {s.slow_rate:g} messages/s of {s.slow_message_bytes}"
            f" bytes for {s.slow_duration_s:g} s (about {s.slow_rate * s.slow_message_bytes / 1000:.0f} KB/s to"
            " each member), once with every member reading and once with one member that stops reading while"
            " the room floods (`--stalled 1`) and reads again at the end. The stalled member's deliveries count"
            " for loss and order but not for latency: the p99 is the other members'. *gaps* are the gap notices"
            " the server sent; *late* the messages the stalled member then fetched with history.",
            "",
            table(
                [
                    "run",
                    "received / expected",
                    "lost / dup / ooo",
                    "gaps",
                    "late",
                    "p50 ms",
                    "p99 ms",
                    "RSS before MiB",
                    "peak RSS MiB",
                    "errors",
                ],
                rows,
            ),
        ]
    )
