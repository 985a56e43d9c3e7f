"""Section 6: the redis scenario, ours three ways up a ladder of offered rates."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..figures import SATURATED, common_rate, kept_up, redis_per_message, scale_steps, zero_loss_max
from ..params import label_of
from ..redis_server import REDIS_SERVER
from ..runs import Run
from ..servers import SCALE_CONFIGS
from ..text import errors, fmt, loss, table
from ..wording import generator_vs_server, workers_vs_one

if TYPE_CHECKING:
    from .model import Report


def scale_section(report: Report) -> str:
    s = report.suite
    by_config = scale_steps(report)
    if not by_config:
        why = report.extra.get("redis_error")
        return "Not measured in this run" + (f": {why}." if why else ".")
    common = common_rate(by_config)
    summary = []
    for key, steps in by_config.items():
        at = next((r for r in steps if r.offered_per_s == common), None)
        best = zero_loss_max(steps)
        redis = SCALE_CONFIGS[key].redis
        summary.append(
            [
                label_of(key),
                fmt(at.window_us_per_delivery, 2) if at else "-",
                fmt(redis_per_message(at, "process_redis_cpu_seconds_total"), 1, 1e6) if at and redis else "-",
                fmt(redis_per_message(at, "process_redis_commands_total"), 1) if at and redis else "-",
                fmt(redis_per_message(at, "process_redis_publish_total"), 2) if at and redis else "-",
                (f"{fmt(best.sustained_per_s)} (offered {fmt(best.offered_per_s)})" if best else "none"),
                fmt(best.get("latency_ms", "p99"), 1) if best else "-",
                fmt(best.server_busiest, 2) if best else "-",
                fmt(best.generator_busiest, 2) if best else "-",
                ladder_end(steps),
            ]
        )
    rows = []
    for per_s in s.scale_per_s:
        for key, steps in by_config.items():
            for r in (r for r in steps if r.offered_per_s == per_s):
                redis = SCALE_CONFIGS[key].redis
                rows.append(
                    [
                        f"{per_s:,}/s",
                        label_of(key),
                        fmt(r.sustained_per_s),
                        loss([r]),
                        fmt(r.get("latency_ms", "p50"), 1),
                        fmt(r.get("latency_ms", "p99"), 1),
                        fmt(r.get("server", "cpu_seconds"), 2),
                        fmt(r.window_us_per_delivery, 2),
                        fmt(redis_per_message(r, "process_redis_cpu_seconds_total"), 1, 1e6) if redis else "-",
                        fmt(redis_per_message(r, "process_redis_commands_total"), 1) if redis else "-",
                        fmt(redis_per_message(r, "process_redis_publish_total"), 2) if redis else "-",
                        fmt(r.server_busiest, 2),
                        fmt(r.redis_busiest, 2) if redis else "-",
                        fmt(r.get("load_generator", "cpu_us_per_delivery"), 1),
                        fmt(r.generator_busiest, 2),
                        errors([r]),
                    ]
                )
    common_text = (
        f"The CPU columns are at {common:,} deliveries/s offered, the highest rate all kept up with"
        if common
        else "The CPU columns are empty: no offered rate was kept up with by every configuration, so there is"
        " none to compare them at (every step's figures are in the table after)"
    )
    nproc = os.cpu_count() or 0
    generator_figures: dict[str, tuple[float | None, float | None]] = {}
    for key, steps in by_config.items():
        at = next((r for r in steps if r.offered_per_s == common), None)
        if at is not None:
            generator_figures[label_of(key)] = (
                at.get("load_generator", "cpu_us_per_delivery"),
                at.window_us_per_delivery,
            )
    one_steps, two_steps = by_config.get("redis", []), by_config.get("redis-2w", [])
    one_best, two_best = zero_loss_max(one_steps), zero_loss_max(two_steps)
    workers_figures = (
        one_best.sustained_per_s if one_best else None,
        two_best.sustained_per_s if two_best else None,
        bool(one_steps) and kept_up(one_steps[-1]),
        bool(two_steps) and kept_up(two_steps[-1]),
        max((r.offered_per_s or 0 for r in one_steps + two_steps), default=None),
    )
    return "\n".join(
        [
            f"Ours three ways, driven by the same load tester: one process without Redis (history in SQLite"
            f" `:memory:`), one process with `--redis`, and `--redis --workers 2`. Measured on"
            f" {report.started:%Y-%m-%d %H:%M} UTC against redis-server {report.extra.get('redis_version', '?')}"
            " started by the harness on a free loopback port with `--save '' --appendonly no` (nothing"
            " persisted: like the in-memory SQLite) and emptied with FLUSHALL before every step. One room of"
            f" {s.scale_members:,} members, {s.scale_senders} senders, {s.message_bytes}-byte messages; each"
            f" step offers a fixed rate (deliveries/s = messages/s x {s.scale_members:,}) for"
            f" {s.scale_duration_s:g} s with up to {s.scale_drain_s:g} s to drain, to a freshly started server."
            " The offered rates climb"
            f" ({', '.join(f'{r:,}' for r in s.scale_per_s)}/s); a configuration leaves the ladder at its"
            " first step with a lost, duplicated or reordered delivery, an error, a socket not connected or"
            f" a median second below {SATURATED:.0%} of the offered rate.",
            "",
            "- *server CPU*: utime + stime of the server process **and every process below it** (the 2"
            " workers and their supervisor), plus what they hold for reaped children, from /proc. The load"
            " tester reads it just before sending starts and when the drain ends, from a `/metrics` page the"
            " harness serves for it (`--metrics-url`, no `--server-pid`), so it is the send + drain window,"
            " as in section 1. *µs/delivery* divides it by the deliveries received.",
            "- *Redis CPU µs/message*: redis-server's `used_cpu_user + used_cpu_sys` (INFO, microsecond"
            " resolution) over the same window, divided by the messages sent. *commands/message*: its"
            " `total_commands_processed` likewise, which counts the commands Lua scripts run (the append"
            " script's INCR, XADD, HSET and PUBLISH), each process's heartbeat and the refresh of every"
            " connected name it runs every few seconds (a cost per socket, not per message), and the"
            " harness's two INFOs. Both include what Redis spends per second whatever the load (its own"
            f" timers: {fmt(report.extra.get('redis_idle_cpu'), 2, 1000)} ms of CPU per second with nothing"
            " connected, measured when it started; with a server, its heartbeat and name refreshes), so at"
            " low rates they overstate the cost of a message. *PUBLISH/message*: the PUBLISH calls"
            " (`cmdstat_publish`) per message:"
            " 1 when every process subscribed to the room gets a message from one publish. A message goes"
            f" to {s.scale_members:,} members, so a Redis cost per delivery would show as"
            f" {s.scale_members:,} times these.",
            "- *highest zero-loss deliveries/s*: among the steps with every socket connected, every delivery"
            " made once and in order within the drain, and no error, the highest median second while"
            " sending (the first second left out), with the offered rate of that step. *Ladder ended at*:"
            " the step that ended a configuration's ladder, and why.",
            f"- **This machine has {nproc} cores, and the load generator ({s.procs} processes, in Python)"
            " runs on the same cores as the server, its workers and Redis**: the highest zero-loss rate is"
            " this machine's ceiling for server and generator together, not the server's alone. At the rate"
            f" of the CPU columns the load generator {generator_vs_server(generator_figures)}. "
            + workers_vs_one(*workers_figures, nproc),
            "",
            f"Per configuration. {common_text}:",
            "",
            table(
                [
                    "configuration",
                    "server CPU µs/delivery",
                    "Redis CPU µs/message",
                    "Redis commands/message",
                    "Redis PUBLISH/message",
                    "highest zero-loss deliveries/s",
                    "p99 ms there",
                    "server busiest s there (cores)",
                    "generator busiest s there (cores)",
                    "ladder ended at",
                ],
                summary,
            ),
            "",
            "Every step:",
            "",
            table(
                [
                    "offered",
                    "configuration",
                    "sustained deliveries/s",
                    "lost / dup / ooo",
                    "p50 ms",
                    "p99 ms",
                    "server CPU s (send + drain)",
                    "server CPU µs/delivery",
                    "Redis CPU µs/message",
                    "Redis commands/message",
                    "Redis PUBLISH/message",
                    "server busiest s (cores)",
                    "Redis busiest s (cores)",
                    "generator µs/delivery",
                    "generator busiest s (cores)",
                    "errors",
                ],
                rows,
            ),
            *([f"\nThe ladder was cut short: {report.extra['scale_note']}."] if report.extra.get("scale_note") else []),
            "",
            "Commands (`R` is Redis's free port, `P` the server's, `TMP` a scratch directory, `URL`"
            " `ws://127.0.0.1:P/ws`, `METRICS` the harness's `/metrics` page, `JSON` the step's report in"
            " bench/out/runs/):",
            "",
            "```",
            shlex.join(redis_command_template(report.extra.get("redis_command", [REDIS_SERVER]))),
            *[
                shlex.join(c.argv("redis://127.0.0.1:R/0")(0, Path("TMP"))).replace("--port 0", "--port P")
                for key, c in SCALE_CONFIGS.items()
                if key in by_config
            ],
            *dict.fromkeys(scale_command(r) for steps in by_config.values() for r in steps if r.command),
            "```",
        ]
    )


def ladder_end(steps: Sequence[Run]) -> str:
    """The step that ended a configuration's ladder and why, or that it kept up to the last step."""
    last = steps[-1] if steps else None
    if last is None or kept_up(last):
        return "kept up at every step" if last else "-"
    why = []
    if last.error:
        why.append(last.error.replace("|", "/"))
    attempted = last.get("connect", "attempted")
    if attempted and last.sockets_held != attempted:
        why.append(f"{fmt(last.sockets_held)} of {fmt(attempted)} sockets connected")
    if any(last.get("deliveries", k) for k in ("lost", "duplicated", "out_of_order")):
        why.append(f"lost / dup / ooo {loss([last])}")
    kinds = last.get("errors", "by_kind")
    if isinstance(kinds, dict) and any(kinds.values()):
        why.append(", ".join(f"{k}: {v}" for k, v in kinds.items() if v))
    if not why and last.sustained_per_s is not None:
        why.append(f"sustained {fmt(last.sustained_per_s)}/s")
    return f"{fmt(last.offered_per_s)}/s: " + ("; ".join(why) or "not clean")


def scale_command(run: Run) -> str:
    """A redis-scenario step's load-tester command, with the run-specific words as placeholders."""
    words = list(run.command)
    for i, word in enumerate(words):
        if word.startswith("ws://"):
            words[i] = "URL"
        elif i and words[i - 1] == "--metrics-url":
            words[i] = "METRICS"
        elif i and words[i - 1] == "--json":
            words[i] = "JSON"
    return shlex.join(words)


def redis_command_template(words: Sequence[str]) -> list[str]:
    """The redis-server command with its port and scratch directory as ``R`` and ``TMP``."""
    template = list(words)
    for i in range(1, len(template)):
        if template[i - 1] == "--port":
            template[i] = "R"
        elif template[i - 1] == "--dir":
            template[i] = "TMP"
    return template
