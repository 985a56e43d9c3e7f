"""The server's own figures before and after a run: its ``/metrics`` page, or ``/proc/PID``.

``/metrics`` (the Prometheus text format) gives every ``chat_*`` and
``process_*`` sample; ``/proc`` gives CPU time and resident memory of any
server, including ones without ``/metrics`` (the benchmark's baselines). When
both are there, CPU and memory come from ``/proc``: reading a file costs the
server nothing, while rendering ``/metrics`` costs it CPU. A server without
``/metrics`` (404, refused, not the text format) is simply not scraped again.

``--server-pid`` names the server's top process; its figures are the sums over
that process and every process below it (:mod:`chat.server.proctree`), so
``server.py --workers N`` is measured whole: the supervisor and every worker.
Our ``/metrics`` under ``--workers`` reports the same sums.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.parser import text_string_to_metric_families

from chat.server import proctree

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
    rss_bytes: int | None = None  # summed over the server's processes
    processes: int | None = None  # how many the figures cover
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
        # Our /metrics counts its processes under --workers; without the count it describes one.
        processes: int | None = int(samples.get("chat_processes", 1)) if cpu is not None else None
        if self.pid is not None:
            usage = self._read_proc(self.pid)
            if usage is not None:
                cpu, rss, processes = usage.cpu_seconds, usage.rss_bytes, usage.processes
        return ServerSnapshot(cpu, rss, processes, samples)

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
    def _read_proc(pid: int) -> proctree.Usage | None:
        try:
            return proctree.tree_usage(pid)
        except OSError as exc:
            log.warning("cannot read /proc/%d: %s", pid, exc)
            return None
