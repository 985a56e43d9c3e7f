"""Section 6: the redis scenario (issue 11's database rows), ours three ways up a ladder of offered rates."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..figures import (
    SATURATED,
    common_rate,
    database_cost,
    kept_up,
    per_message,
    round_trips,
    scale_steps,
    zero_loss_max,
)
from ..params import label_of
from ..postgres_server import SETTINGS
from ..redis_server import REDIS_SERVER
from ..runs import Run
from ..servers import ALL_SCALE_CONFIGS, ScaleConfig
from ..text import errors, fmt, loss, table
from ..wording import generator_vs_server, workers_vs_one

if TYPE_CHECKING:
    from .model import Report

REDIS_URL = "redis://127.0.0.1:R/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:PG/DB"


def database_cells(config: ScaleConfig, run: Run | None) -> list[str]:
    """DB round trips and batches per message, PostgreSQL CPU µs per message: PostgreSQL's figures; SQLite
    runs in the server process (no round trip to count); a suite saved before issue 11 has none."""
    if config.postgres:
        if run is None:
            return ["-", "-", "-"]
        batches = per_message(run, "process_postgres_appends_total")
        cpu = per_message(run, "process_postgres_cpu_seconds_total")
        return [fmt(round_trips(run), 2), fmt(batches, 2), fmt(cpu, 1, 1e6)]
    return ["-", "-", "-"] if config.legacy else ["n/a (in process)", "n/a", "-"]


def redis_cells(config: ScaleConfig, run: Run | None) -> list[str]:
    if run is None or not config.redis:
        return ["-", "-", "-"]
    return [
        fmt(per_message(run, "process_redis_cpu_seconds_total"), 1, 1e6),
        fmt(per_message(run, "process_redis_commands_total"), 1),
        fmt(per_message(run, "process_redis_publish_total"), 2),
    ]


def scale_section(report: Report) -> str:
    s = report.suite
    by_config = scale_steps(report)
    if not by_config:
        why = report.extra.get("redis_error")
        return "Not measured in this run" + (f": {why}." if why else ".")
    common = common_rate(by_config)
    summary = []
    for key, steps in by_config.items():
        config = ALL_SCALE_CONFIGS[key]
        at = next((r for r in steps if r.offered_per_s == common), None)
        best = zero_loss_max(steps)
        summary.append(
            [
                label_of(key),
                fmt(at.window_us_per_delivery, 2) if at else "-",
                database_cells(config, at)[2],
                *redis_cells(config, at),
                (f"{fmt(best.sustained_per_s)} (offered {fmt(best.offered_per_s)})" if best else "none"),
                database_cells(config, best)[0],
                fmt(best.get("latency_ms", "p99"), 1) if best else "-",
                fmt(best.server_busiest, 2) if best else "-",
                fmt(best.generator_busiest, 2) if best else "-",
                ladder_end(steps),
            ]
        )
    rows = []
    for per_s in s.scale_per_s:
        for key, steps in by_config.items():
            config = ALL_SCALE_CONFIGS[key]
            for r in (r for r in steps if r.offered_per_s == per_s):
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
                        *database_cells(config, r),
                        *redis_cells(config, r),
                        fmt(r.server_busiest, 2),
                        fmt(r.postgres_busiest, 2) if config.postgres else "-",
                        fmt(r.redis_busiest, 2) if config.redis else "-",
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
    return "\n".join(
        [
            *scale_intro(report, by_config, common),
            "",
            f"Per configuration. {common_text}; the round trips, at each one's highest zero-loss rate:",
            "",
            table(
                [
                    "configuration",
                    "server CPU µs/delivery",
                    "PostgreSQL CPU µs/message",
                    "Redis CPU µs/message",
                    "Redis commands/message",
                    "Redis PUBLISH/message",
                    "highest zero-loss deliveries/s",
                    "DB round trips/message there",
                    "p99 ms there",
                    "server busiest s there (cores)",
                    "generator busiest s there (cores)",
                    "ladder ended at",
                ],
                summary,
            ),
            "",
            *database_comparison(by_config),
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
                    "DB round trips/message",
                    "DB batches/message",
                    "PostgreSQL CPU µs/message",
                    "Redis CPU µs/message",
                    "Redis commands/message",
                    "Redis PUBLISH/message",
                    "server busiest s (cores)",
                    "PostgreSQL busiest s (cores)",
                    "Redis busiest s (cores)",
                    "generator µs/delivery",
                    "generator busiest s (cores)",
                    "errors",
                ],
                rows,
            ),
            *([f"\nThe ladder was cut short: {report.extra['scale_note']}."] if report.extra.get("scale_note") else []),
            "",
            "Commands (`R` is Redis's free port, `PG` PostgreSQL's, `DB` the step's fresh database, `P` the"
            " server's, `TMP` a scratch directory, `URL` `ws://127.0.0.1:P/ws`, `METRICS` the harness's"
            " `/metrics` page, `JSON` the step's report in bench/out/runs/):",
            "",
            "```",
            *([postgres_command(report)] if any(ALL_SCALE_CONFIGS[k].postgres for k in by_config) else []),
            shlex.join(redis_command_template(report.extra.get("redis_command", [REDIS_SERVER]))),
            *dict.fromkeys(server_command(ALL_SCALE_CONFIGS[key], steps) for key, steps in by_config.items()),
            *dict.fromkeys(scale_command(r) for steps in by_config.values() for r in steps if r.command),
            "```",
        ]
    )


def scale_intro(report: Report, by_config: dict[str, list[Run]], common: int | None) -> list[str]:
    """What ran and how it was measured, and what the figures say about the machine and the workers."""
    s = report.suite
    configs = [ALL_SCALE_CONFIGS[key] for key in by_config]
    postgres = any(c.postgres for c in configs)
    legacy = any(c.legacy for c in configs)
    whats = [c.what for c in configs]
    ways = ", ".join(whats[:-1]) + (f", and {whats[-1]}" if len(whats) > 1 else whats[-1])
    database = (
        f" and PostgreSQL {report.extra.get('postgres_version', '?')}, a throwaway cluster the harness starts"
        " (`initdb` in a scratch directory on this machine's disk, a free loopback port) with PostgreSQL's"
        " durability defaults: `fsync`, `synchronous_commit` and `full_page_writes` on, so every commit waits"
        " for its WAL to reach the disk, as in a deployment (the tests' cluster runs with fsync off). SQLite"
        " here, in WAL with `synchronous=NORMAL`, does not sync each commit: it survives a crash of the server,"
        " not of the machine. Every step gets a fresh database (a new PostgreSQL database, a new SQLite file)"
        if postgres
        else ""
    )
    persisted = "Redis holds no durable data" if not legacy else "like the in-memory SQLite"
    nproc = os.cpu_count() or 0
    generator_figures: dict[str, tuple[float | None, float | None]] = {}
    for key, steps in by_config.items():
        at = next((r for r in steps if r.offered_per_s == common), None)
        if at is not None:
            generator_figures[label_of(key)] = (
                at.get("load_generator", "cpu_us_per_delivery"),
                at.window_us_per_delivery,
            )
    one_key = next((k for k in by_config if ALL_SCALE_CONFIGS[k].redis and ALL_SCALE_CONFIGS[k].workers == 1), "")
    two_key = next((k for k in by_config if ALL_SCALE_CONFIGS[k].redis and ALL_SCALE_CONFIGS[k].workers == 2), "")
    one_steps, two_steps = by_config.get(one_key, []), by_config.get(two_key, [])
    one_best, two_best = zero_loss_max(one_steps), zero_loss_max(two_steps)
    workers_figures = (
        one_best.sustained_per_s if one_best else None,
        two_best.sustained_per_s if two_best else None,
        bool(one_steps) and kept_up(one_steps[-1]),
        bool(two_steps) and kept_up(two_steps[-1]),
        max((r.offered_per_s or 0 for r in one_steps + two_steps), default=None),
    )
    return [
        f"Ours {len(configs)} ways, driven by the same load tester: {ways}. Measured on"
        f" {report.started:%Y-%m-%d %H:%M} UTC against redis-server {report.extra.get('redis_version', '?')}"
        " started by the harness on a free loopback port with `--save '' --appendonly no` (nothing"
        f" persisted: {persisted}) and emptied with FLUSHALL before every step{database}. One room of"
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
        *(
            [
                "- *DB round trips/message*: the statements the server ran in the step's PostgreSQL database"
                " over the same window, as `pg_stat_statements` counts them (each top-level statement is one"
                " round trip: the `chat_append` call that stores a batch, and any read, such as a gap filled"
                " from the database), divided by the messages sent; *DB batches/message*: the `chat_append`"
                " calls among them. Below 1, messages were stored in batches of more than one. SQLite runs"
                " inside the server process: there is no round trip to count (it commits the messages of one"
                " event-loop tick together). *PostgreSQL CPU µs/message*: every process of the cluster (the"
                " backends serving the server, the WAL writer, the checkpointer) from /proc, over the same"
                " window, per message."
            ]
            if postgres
            else []
        ),
        "- *Redis CPU µs/message*: redis-server's `used_cpu_user + used_cpu_sys` (INFO, microsecond"
        " resolution) over the same window, divided by the messages sent. *commands/message*: its"
        " `total_commands_processed` likewise, which counts the commands Lua scripts run, each process's"
        " heartbeat and the refresh of every connected name it runs every few seconds (a cost per socket,"
        " not per message), and the harness's two INFOs. Both include what Redis spends per second"
        f" whatever the load (its own timers: {fmt(report.extra.get('redis_idle_cpu'), 2, 1000)} ms of CPU"
        " per second with nothing connected, measured when it started; with a server, its heartbeat and"
        " name refreshes), so at low rates they overstate the cost of a message. *PUBLISH/message*: the"
        " PUBLISH calls (`cmdstat_publish`) per message: 1 when every process subscribed to the room gets a"
        f" message from one publish. A message goes to {s.scale_members:,} members, so a cost per delivery"
        f" would show as {s.scale_members:,} times these.",
        "- *highest zero-loss deliveries/s*: among the steps with every socket connected, every delivery"
        " made once and in order within the drain, and no error, the highest median second while"
        " sending (the first second left out), with the offered rate of that step. *Ladder ended at*:"
        " the step that ended a configuration's ladder, and why.",
        f"- **This machine has {nproc} cores, and the load generator ({s.procs} processes, in Python)"
        " runs on the same cores as the server, its workers, Redis"
        + (" and PostgreSQL" if postgres else "")
        + "**: the highest zero-loss rate is this machine's ceiling for all of them together, not the"
        " server's alone. At the rate of the CPU columns the load generator"
        f" {generator_vs_server(generator_figures)}. " + workers_vs_one(*workers_figures, nproc),
    ]


def database_comparison(by_config: dict[str, list[Run]]) -> list[str]:
    """Issue 11's comparison: one process on PostgreSQL + Redis against one on SQLite, rate by rate."""
    cost = database_cost(by_config)
    if not cost.pairs:
        return []
    pairs = ", ".join(f"{rate:,}/s {pg / sq:.2f}x ({pg:.2f} vs {sq:.2f} µs)" for rate, (sq, pg) in cost.pairs.items())
    return [
        "Fan-out cost per delivery against the database: one process on PostgreSQL + Redis against one on"
        f" SQLite, server CPU per delivery at each offered rate both kept up with: {pairs}; median"
        f" {fmt(cost.ratio, 2)}x (the target is in *Targets*).",
        "",
    ]


def server_command(config: ScaleConfig, steps: Sequence[Run]) -> str:
    """A configuration's server command as it ran (its first recorded step's), ports, URLs and paths as placeholders."""
    words = next((r.server_command for r in steps if r.server_command), None)
    if words is None:
        words = config.argv(REDIS_URL, POSTGRES_DSN)(0, Path("TMP"))
    template = list(words)
    for i in range(1, len(template)):
        before, word = template[i - 1], template[i]
        if before == "--port":
            template[i] = "P"
        elif before == "--redis":
            template[i] = REDIS_URL
        elif before == "--db" and word.startswith("postgresql://"):
            template[i] = POSTGRES_DSN
        elif before == "--db" and word != ":memory:":
            template[i] = f"TMP/{Path(word).name}"
    return shlex.join(template)


def postgres_command(report: Report) -> str:
    settings = report.extra.get("postgres_settings", list(SETTINGS))
    options = " ".join(["-p PG", "-c listen_addresses=127.0.0.1", *(f"-c {s}" for s in settings)])
    return shlex.join(["pg_ctl", "start", "-w", "-D", "TMP", "-o", options])


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
