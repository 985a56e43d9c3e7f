"""The server's own figures before and after a run: its ``/metrics`` page, or ``/proc/PID``.

``/metrics`` (the Prometheus text format) gives every ``chat_*`` and
``process_*`` sample; ``/proc`` gives CPU time and resident memory of any
server, including ones without ``/metrics`` (the benchmark's baselines). When
both are there, CPU and memory come from ``/proc``: reading a file costs the
server nothing, while rendering ``/metrics`` costs it CPU. A server without
``/metrics`` (404, refused, not the text format) is simply not scraped again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

# /metrics is a small page; a server too busy to answer within this is
# reported without its figures rather than holding up the run.
SCRAPE_TIMEOUT_S = 5.0
REPORTED_PREFIXES = ("chat_", "process_")
# Histogram buckets would swamp the report, and a creation timestamp has no
# meaningful difference; counts, sums, counters and gauges are kept.
SKIPPED_SUFFIXES = ("_bucket", "_created")


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    cpu_seconds: float | None = None
    rss_bytes: int | None = None
    samples: dict[str, float] = field(default_factory=dict)


def metrics_url_for(ws_url: str) -> str:
    """``ws://host:port/ws`` -> ``http://host:port/metrics`` (``wss`` -> ``https``)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/metrics", "", ""))


def parse_metrics(text: str) -> dict[str, float]:
    """Every sample as ``name{label="value",...}`` -> value."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name
            if sample.labels:
                key += "{" + ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items())) + "}"
            samples[key] = float(sample.value)
    return samples


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """``after - before`` for the ``chat_`` and ``process_`` samples (a sample new in ``after`` counts from 0)."""
    delta = {}
    for key, value in after.items():
        name = key.split("{", 1)[0]
        if name.startswith(REPORTED_PREFIXES) and not name.endswith(SKIPPED_SUFFIXES):
            delta[key] = value - before.get(key, 0.0)
    return dict(sorted(delta.items()))


def parse_proc_cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """User plus system CPU time from the text of ``/proc/PID/stat``."""
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of the whole line
    return (utime + stime) / ticks_per_second


def parse_proc_rss_bytes(status: str) -> int | None:
    """``VmRSS`` from the text of ``/proc/PID/status``, in bytes."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            assert unit == "kB", unit
            return int(value) * 1024
    return None


class ServerProbe:
    """Reads the server's figures; every failure is logged once and leaves the figure unknown."""

    def __init__(self, metrics_url: str | None, pid: int | None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.metrics_url = metrics_url
        self.pid = pid
        self.ssl_context = ssl_context
        self.metrics_note: str | None = None  # why /metrics was not read, for the report

    async def snapshot(self) -> ServerSnapshot:
        samples = await self._scrape()
        cpu = samples.get("process_cpu_seconds_total")
        rss_sample = samples.get("process_resident_memory_bytes")
        rss = int(rss_sample) if rss_sample is not None else None
        if self.pid is not None:
            proc_cpu, proc_rss = self._read_proc(self.pid)
            cpu = proc_cpu if proc_cpu is not None else cpu
            rss = proc_rss if proc_rss is not None else rss
        return ServerSnapshot(cpu, rss, samples)

    async def _scrape(self) -> dict[str, float]:
        if self.metrics_url is None or self.metrics_note is not None:
            return {}
        try:
            text = await asyncio.to_thread(self._fetch, self.metrics_url)
            return parse_metrics(text)
        except urllib.error.HTTPError as exc:
            self.metrics_note = f"{self.metrics_url}: HTTP {exc.code}"
        except (OSError, ValueError) as exc:  # refused, timed out, not the text format
            self.metrics_note = f"{self.metrics_url}: {exc}"
        log.info("server metrics unavailable (%s)", self.metrics_note)
        return {}

    def _fetch(self, url: str) -> str:
        # No proxy: the server under test is reached directly, whatever $http_proxy says.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.ssl_context)
        )
        with opener.open(url, timeout=SCRAPE_TIMEOUT_S) as response:
            body: bytes = response.read()
        return body.decode("utf-8")

    @staticmethod
    def _read_proc(pid: int) -> tuple[float | None, int | None]:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                cpu = parse_proc_cpu_seconds(f.read(), os.sysconf("SC_CLK_TCK"))
            with open(f"/proc/{pid}/status", encoding="utf-8") as f:
                rss = parse_proc_rss_bytes(f.read())
        except OSError as exc:
            log.warning("cannot read /proc/%d: %s", pid, exc)
            return None, None
        return cpu, rss
