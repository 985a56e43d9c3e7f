"""``--plot FILE.png``: latency percentiles over the run, and the latency distribution.

Imported only when a plot is asked for: matplotlib takes a while to import.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display here, and no GUI toolkit to import

import matplotlib.pyplot as plt
import numpy as np
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

# Bins per decade of the latency histogram: fine enough to show its shape.
BINS_PER_DECADE = 20


def draw(report: dict[str, Any], histogram: HdrHistogram, path: str) -> None:
    figure, (over_time, spread) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    config = report["config"]
    rooms = f"{config['rooms']} room" + ("s" if config["rooms"] != 1 else "")
    figure.suptitle(
        f"{report['scenario']}: {config['clients']} clients, {rooms}, "
        f"{min(config['senders'], config['clients'])} senders, {config['rate']:g} msg/s"
    )
    _over_time(over_time, report["timeline"])
    _distribution(spread, histogram, report["latency_ms"])
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _over_time(ax: Any, timeline: list[dict[str, Any]]) -> None:
    seconds = [e["t"] for e in timeline]
    p50 = [np.nan if e["p50_ms"] is None else e["p50_ms"] for e in timeline]
    p99 = [np.nan if e["p99_ms"] is None else e["p99_ms"] for e in timeline]
    ax.plot(seconds, p99, marker=".", color="tab:red", label="p99")
    ax.plot(seconds, p50, marker=".", color="tab:blue", label="p50")
    ax.set_xlabel("seconds since sending started")
    ax.set_ylabel("fan-out latency (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    rate = ax.twinx()
    rate.bar(seconds, [e["deliveries"] for e in timeline], width=0.8, color="tab:gray", alpha=0.25)
    rate.set_ylabel("deliveries per second")
    rate.set_ylim(bottom=0)
    ax.set_zorder(rate.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(loc="upper left")
    ax.set_title("latency percentiles per second")


def _distribution(ax: Any, histogram: HdrHistogram, latency: dict[str, Any]) -> None:
    values, counts = [], []
    for item in histogram.get_recorded_iterator():
        values.append(item.value_iterated_to / 1000.0)
        counts.append(item.count_added_in_this_iter_step)
    ax.set_title("latency distribution")
    ax.set_xlabel("fan-out latency (ms, log scale)")
    ax.set_ylabel("deliveries")
    if not values:
        ax.text(0.5, 0.5, "no deliveries", ha="center", va="center", transform=ax.transAxes)
        return
    low, high = np.log10(max(min(values), 0.001)), np.log10(max(values)) + 0.01
    bins = np.logspace(low, high, max(int((high - low) * BINS_PER_DECADE), 10))
    ax.hist(values, bins=bins, weights=counts, color="tab:blue", alpha=0.7)
    ax.set_xscale("log")
    for key, color in (("p50", "tab:green"), ("p99", "tab:orange"), ("p99_9", "tab:red")):
        if latency.get(key) is not None:
            ax.axvline(
                latency[key], color=color, linestyle="--", label=f"{key.replace('_', '.')} {latency[key]:.2f} ms"
            )
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
