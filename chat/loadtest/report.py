"""The run's results: merged from every worker into the JSON document, and that document as text.

The JSON keys are an interface (the benchmark harness reads them): add keys,
never rename or drop one. The text report is rendered from the JSON document
alone, so the two cannot disagree.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from chat.loadtest import stats
from chat.loadtest.accounting import Ledger, Summary, Tally
from chat.loadtest.metrics import metrics_delta
from chat.loadtest.run import RunData
from chat.loadtest.slo import Figures, evaluate, parse_slo

Report = dict[str, Any]

CONNECT_QUANTILES = (("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0), ("max_ms", 100.0))
RESYNC_QUANTILES = (("p50", 50.0), ("p99", 99.0), ("max", 100.0))
# The text report lists rooms one by one up to this many; beyond, only the worst.
ROOMS_LISTED = 10


def build(data: RunData) -> tuple[Report, HdrHistogram]:
    """The JSON document of a run, and the merged latency histogram (for the plot)."""
    config, results = data.config, data.results
    ledger = Ledger()
    for result in results:
        ledger.merge(result.ledger)
    summary = ledger.summary()
    latency = stats.merge(r.latency for r in results)
    errors: Counter[str] = Counter()
    close_codes: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
        close_codes.update(r.close_codes)
    total = summary.total
    report: Report = {
        "config": _config(data),
        "scenario": config.scenario,
        "duration_s": round(data.measured_s, 3),
        "connect": {
            "attempted": sum(r.attempted for r in results),
            "connected": sum(r.connected for r in results),
            "failed": sum(r.failed for r in results),
            **stats.sample_percentiles([ms for r in results for ms in r.connect_ms], CONNECT_QUANTILES),
        },
        "messages": {
            "sent": sum(r.sent for r in results),
            "send_errors": sum(r.send_errors for r in results),
            "skipped": sum(r.skipped for r in results),
            "send_lag_ms": stats.latency_ms(stats.merge(r.send_lag for r in results)),
            # --reactions-per-message: events that are not messages, owed like them (in "deliveries").
            "reactions": {
                "sent": sum(r.reactions_sent for r in results),
                "refused": sum(r.reaction_errors for r in results),
                "delivered": sum(r.reaction_deliveries for r in results),
            },
        },
        "deliveries": {
            **_tally(total),
            "per_second": round(total.received / data.measured_s, 1) if data.measured_s > 0 else None,
            "late": total.late,
            "extra": total.extra,
            "gaps": sum(r.gaps for r in results),
            "foreign": sum(r.foreign for r in results),
        },
        "rooms": {room: _tally(t) for room, t in sorted(summary.rooms.items(), key=lambda item: _room_key(item[0]))},
        "latency_ms": stats.latency_ms(latency),
        "errors": {"by_kind": dict(errors.most_common()), "close_codes": dict(sorted(close_codes.items()))},
        "server": _server(data, total.received),
        "load_generator": _load_generator(data),
        "idle": _idle(data),
        "storm": _storm(data, summary),
        "timeline": data.monitor.timeline(data.go_index),
        "slo": None,
    }
    if config.slo is not None:
        report["slo"] = _slo(config.slo, report)
    return report, latency


def passed(report: Report) -> bool:
    return report["slo"] is None or bool(report["slo"]["passed"])


def _config(data: RunData) -> dict[str, Any]:
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(data.config).items()}
    return config


def _room_key(room: str) -> tuple[str, int]:
    # lt-2 before lt-10
    head, _, tail = room.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (room, -1)


def _tally(t: Tally) -> dict[str, int]:
    return {
        "expected": t.expected,
        "received": t.received,
        "lost": t.lost,
        "duplicated": t.duplicated,
        "out_of_order": t.out_of_order,
    }


def _server(data: RunData, deliveries: int) -> dict[str, Any]:
    before, after = data.server_before, data.server_after
    cpu = None
    if before.cpu_seconds is not None and after.cpu_seconds is not None:
        cpu = round(after.cpu_seconds - before.cpu_seconds, 3)
    return {
        "cpu_seconds": cpu,
        "rss_bytes_before": before.rss_bytes,
        "rss_bytes_after": after.rss_bytes,
        "cpu_us_per_delivery": round(cpu * 1e6 / deliveries, 3) if cpu is not None and deliveries else None,
        "metrics_delta": metrics_delta(before.samples, after.samples),
        "metrics_note": data.metrics_note,
        # How many server processes the CPU and RSS figures add up (a supervisor and its workers).
        "processes": after.processes if after.processes is not None else before.processes,
    }


def _load_generator(data: RunData) -> dict[str, Any]:
    """This program's own CPU over the sending window: if it nears a core per process, add --procs."""
    cpu = sum(r.cpu_seconds for r in data.results)
    deliveries = sum(r.deliveries for r in data.results)
    busy = cpu / (data.measured_s * len(data.results)) if data.measured_s > 0 else None
    return {
        "procs": len(data.results),
        "cpu_seconds": round(cpu, 3),
        "cpu_us_per_delivery": round(cpu * 1e6 / deliveries, 3) if deliveries else None,
        "busy_share": round(busy, 3) if busy is not None else None,
    }


def _idle(data: RunData) -> dict[str, Any] | None:
    if data.config.scenario != "idle":
        return None
    sockets = sum(r.connected for r in data.results)
    # Both figures are sums over every server process, so the growth is the
    # whole server's, divided by the sockets every process holds together.
    before, after = data.server_before.rss_bytes, data.server_after.rss_bytes
    per_socket = None
    if before is not None and after is not None and sockets:
        per_socket = round((after - before) / sockets, 1)
    return {
        "sockets": sockets,
        "rss_bytes_before": before,
        "rss_bytes_after": after,
        "bytes_per_socket": per_socket,
        "processes": data.server_after.processes,
    }


def _storm(data: RunData, summary: Summary) -> dict[str, Any] | None:
    if data.config.scenario != "storm":
        return None
    resumed = [name for r in data.results for name in r.storm_resumed]
    whole = [name for name in resumed if name in summary.by_client and summary.by_client[name].clean]
    return {
        "dropped": sum(len(r.storm_dropped) for r in data.results),
        "resumed": len(resumed),
        "resumed_without_gap": len(whole),
        "resync_ms": stats.sample_percentiles([ms for r in data.results for ms in r.resync_ms], RESYNC_QUANTILES),
    }


def _slo(spec: str, report: Report) -> dict[str, Any]:
    latency = report["latency_ms"]
    figures = Figures(
        latency_ms={
            key: latency[field]
            for key, field in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p99_9"), ("max", "max"))
            if latency[field] is not None
        },
        lost=report["deliveries"]["lost"],
        duplicated=report["deliveries"]["duplicated"],
        out_of_order=report["deliveries"]["out_of_order"],
        errors=sum(report["errors"]["by_kind"].values()),
        expected=report["deliveries"]["expected"],
    )
    failures = evaluate(parse_slo(spec), figures)
    return {"spec": spec, "passed": not failures, "failures": failures}


# -- text ----------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f} MB"


def render(report: Report) -> str:
    """The report as the text printed at the end of a run."""
    c = report["config"]
    lines = []
    if report["scenario"] == "idle":
        head = f"idle load test: {c['clients']} sockets in {_count(c['rooms'], 'room')}, held {c['duration']:g} s"
    else:
        head = (
            f"{report['scenario']} load test: {c['clients']} clients in {_count(c['rooms'], 'room')}, "
            f"{min(c['senders'], c['clients'])} senders, {c['rate']:g} msg/s for {c['duration']:g} s"
        )
    lines.append(f"{head}  ({c['url']}, {c['procs']} load process{'es' if c['procs'] != 1 else ''})")
    k = report["connect"]
    lines.append(
        f"connect      {k['connected']}/{k['attempted']} connected, {k['failed']} failed;  "
        f"p50 {_ms(k['p50_ms'])}  p90 {_ms(k['p90_ms'])}  p99 {_ms(k['p99_ms'])}  max {_ms(k['max_ms'])}"
    )
    if report["scenario"] != "idle":
        m, d = report["messages"], report["deliveries"]
        lag = m["send_lag_ms"]
        lines.append(
            f"messages     {m['sent']} sent, {m['send_errors']} refused by the server"
            + (f", {m['skipped']} NOT SENT (senders fell behind by more than --drain)" if m["skipped"] else "")
            + (
                f", {m['reactions']['sent']} reactions ({m['reactions']['refused']} refused)"
                if m.get("reactions", {}).get("sent")
                else ""
            )
            + ";  "
            f"behind schedule p50 {_ms(lag['p50'])}  p99 {_ms(lag['p99'])}  max {_ms(lag['max'])}"
        )
        if d["lost"] or d["duplicated"] or d["out_of_order"]:
            verdict = "NOT CLEAN"
        else:
            verdict = "every owed delivery made" if d["expected"] else "nothing was owed"
        lines.append(
            f"deliveries   {d['received']}/{d['expected']} received ({verdict}): {d['lost']} lost, "
            f"{d['duplicated']} duplicated, {d['out_of_order']} out of order"
        )
        per_second = "-" if d["per_second"] is None else f"{d['per_second']:,.0f}"
        lines.append(
            f"             {per_second} per second; {d['late']} fetched late after {d['gaps']} gaps; "
            f"{d['extra']} seen from before joining"
        )
        lat = report["latency_ms"]
        lines.append(
            f"latency      p50 {_ms(lat['p50'])}  p90 {_ms(lat['p90'])}  p99 {_ms(lat['p99'])}  "
            f"p99.9 {_ms(lat['p99_9'])}  max {_ms(lat['max'])}  ({lat['count']} deliveries, since intended send)"
        )
        lines.extend(_rooms_lines(report["rooms"]))
    lines.extend(_error_lines(report["errors"]))
    lines.extend(_server_lines(report["server"]))
    g = report["load_generator"]
    if report["scenario"] != "idle" and g["cpu_us_per_delivery"] is not None:
        lines.append(
            f"load gen     {g['cpu_seconds']:.2f} s CPU in {g['procs']} process{'es' if g['procs'] != 1 else ''}"
            f" ({g['cpu_us_per_delivery']:.1f} us per delivery)"
        )
    if report["idle"] is not None:
        i = report["idle"]
        per = "-" if i["bytes_per_socket"] is None else f"{i['bytes_per_socket'] / 1024:.1f} KB"
        lines.append(
            f"idle         {i['sockets']} sockets: server RSS {_mb(i['rss_bytes_before'])} -> "
            f"{_mb(i['rss_bytes_after'])}{_over(i['processes'])}, {per} per socket"
        )
    if report["storm"] is not None:
        s = report["storm"]
        r = s["resync_ms"]
        lines.append(
            f"storm        {s['dropped']} dropped, {s['resumed']} resumed, {s['resumed_without_gap']} with no gap;  "
            f"resync p50 {_ms(r['p50'])}  p99 {_ms(r['p99'])}  max {_ms(r['max'])}"
        )
    if report["slo"] is not None:
        slo = report["slo"]
        if slo["passed"]:
            lines.append(f"SLO          {slo['spec']}: met")
        else:
            lines.append(f"SLO          {slo['spec']}: MISSED")
            lines.extend(f"             {failure}" for failure in slo["failures"])
    return "\n".join(lines)


def _rooms_lines(rooms: dict[str, dict[str, int]]) -> list[str]:
    def bad(t: dict[str, int]) -> int:
        return t["lost"] + t["duplicated"] + t["out_of_order"]

    shown = list(rooms.items())
    note = ""
    if len(shown) > ROOMS_LISTED:
        shown = sorted(shown, key=lambda item: -bad(item[1]))[:3]
        note = f" (the {len(shown)} worst of {len(rooms)})"
    lines = []
    for i, (room, t) in enumerate(shown):
        label = "rooms" + note if i == 0 else ""
        lines.append(
            f"{label:<12} {room}: {t['received']}/{t['expected']}, {t['lost']} lost, "
            f"{t['duplicated']} dup, {t['out_of_order']} ooo"
        )
    return lines


def _error_lines(errors: dict[str, dict[str, int]]) -> list[str]:
    if not errors["by_kind"] and not errors["close_codes"]:
        return ["errors       none"]
    lines = []
    kinds = ";  ".join(f"{kind}: {count}" for kind, count in errors["by_kind"].items())
    lines.append(f"errors       {kinds or 'none'}")
    if errors["close_codes"]:
        codes = ", ".join(f"{code} x{count}" for code, count in errors["close_codes"].items())
        lines.append(f"             close codes: {codes}")
    return lines


def _server_lines(server: dict[str, Any]) -> list[str]:
    lines = []
    cpu = server["cpu_seconds"]
    figures = []
    if cpu is not None:
        per = server["cpu_us_per_delivery"]
        figures.append(f"CPU {cpu:.2f} s" + (f" ({per:.2f} us per delivery)" if per is not None else ""))
    if server["rss_bytes_before"] is not None or server["rss_bytes_after"] is not None:
        figures.append(f"RSS {_mb(server['rss_bytes_before'])} -> {_mb(server['rss_bytes_after'])}")
    if figures:
        lines.append("server       " + ";  ".join(figures) + _over(server["processes"]))
    else:
        lines.append("server       no figures (give --server-pid, or a server with /metrics)")
    delta = server["metrics_delta"]
    if delta:
        lines.append("server /metrics, change over the run:")
        width = max(len(key) for key in delta)
        for key, value in delta.items():
            lines.append(f"  {key:<{width}}  {value:+,.6g}")
    elif server.get("metrics_note"):
        lines.append(f"             /metrics not read: {server['metrics_note']}")
    return lines


def _over(processes: int | None) -> str:
    """Says the figures are a whole tree's when they add up several processes."""
    return f" (sum over {processes} processes)" if processes is not None and processes > 1 else ""
