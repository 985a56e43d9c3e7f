"""The soak test: many sockets, steady chat, a long time; nothing may grow.

``make soak`` (or ``python bench/soak.py``) starts server.py, drives it with the
load tester (10,000 sockets, chat traffic, 10 minutes by default), samples the
server's memory and file descriptors every 10 s, takes p99 per 10 s window from
the load tester's timeline, and writes ``bench/soak.md``. It exits 1 when the
run had errors or losses, or when memory, descriptors or p99 grew.

Shorter runs for a try: ``SOAK_SECONDS=60 SOAK_CLIENTS=2000 make soak``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE_S = 10.0
# Growth allowed between the first and the last minute of the run: the Python
# allocator keeps freed arenas for reuse, and 10,000 sockets' buffers breathe.
MEMORY_GROWTH = 0.10
P99_GROWTH = 0.50
FD_SLACK = 20  # log files, the database, a metrics scrape in flight


@dataclass
class Sample:
    t: float
    rss_mb: float
    fds: int


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _start_server(db: str) -> tuple[asyncio.subprocess.Process, str]:
    """server.py in a child process, and its WebSocket URL once it listens."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "server.py",
        "--port",
        str(port),
        "--db",
        db,
        "--cookie-secret",
        "soak",
        # Every client comes from loopback: the per-address cap would refuse them.
        "--max-connections-per-ip",
        "0",
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        if not line:
            raise RuntimeError("server.py exited before listening")
        if "chat server on" in line:
            break
    _background.add(asyncio.ensure_future(_drain(proc)))
    return proc, f"ws://127.0.0.1:{port}/ws"


# Keeps the log-draining task referenced until the run ends.
_background: set[asyncio.Future[None]] = set()


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    async for _ in proc.stderr:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def soak(seconds: float, clients: int, out: Path) -> int:
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    server, url = await _start_server(str(workdir / "soak.sqlite3"))
    report_json = workdir / "loadtest.json"
    rooms = max(1, clients // 100)  # rooms of 100: presence stays cheap, fan-out is real
    senders = rooms
    command = [
        sys.executable, "-m", "chat.loadtest", url,
        "--server-pid", str(server.pid),
        "--clients", str(clients), "--ramp", "500",
        "--rooms", str(rooms), "--senders", str(senders),
        "--rate", str(senders * 2),  # 2 messages a second per room, 200 deliveries/s per room
        "--duration", str(seconds), "--drain", "10",
        "--json", str(report_json), "-q",
    ]  # fmt: skip
    tester = await asyncio.create_subprocess_exec(*command, cwd=REPO)
    samples: list[Sample] = []
    started = time.monotonic()
    while tester.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tester.wait(), SAMPLE_S)
        samples.append(Sample(time.monotonic() - started, _proc_rss_mb(server.pid), _proc_fds(server.pid)))
    server.send_signal(signal.SIGTERM)
    await asyncio.wait_for(server.wait(), 30)
    report = json.loads(report_json.read_text())
    return _write(report, samples, seconds, clients, rooms, out, command)


def _windows(report: dict[str, Any], width: int) -> list[float | None]:
    """p99 per ``width``-second window of the sending phase, from the per-second timeline."""
    timeline = report.get("timeline") or []
    out: list[float | None] = []
    for i in range(0, len(timeline), width):
        window = [t["p99_ms"] for t in timeline[i : i + width] if t.get("p99_ms") is not None]
        out.append(max(window) if window else None)
    return out


def _write(
    report: dict[str, Any],
    samples: list[Sample],
    seconds: float,
    clients: int,
    rooms: int,
    out: Path,
    command: list[str],
) -> int:
    d = report["deliveries"]
    errors = sum(report["errors"]["by_kind"].values()) + sum(report["errors"]["close_codes"].values())
    connected = report["connect"]["connected"]
    # Steady state: from the first sample after every socket is connected.
    steady = [s for s in samples if s.fds >= connected] or samples
    head, tail = steady[: min(6, len(steady))], steady[-min(6, len(steady)) :]
    rss_first, rss_last = statistics.median(s.rss_mb for s in head), statistics.median(s.rss_mb for s in tail)
    fd_first, fd_last = max(s.fds for s in head), max(s.fds for s in tail)
    p99s = [p for p in _windows(report, int(SAMPLE_S)) if p is not None]
    p99_first = statistics.median(p99s[: min(6, len(p99s))]) if p99s else None
    p99_last = statistics.median(p99s[-min(6, len(p99s)) :]) if p99s else None

    checks = {
        "no errors": errors == 0,
        "no lost, duplicated or out-of-order delivery": (d["lost"], d["duplicated"], d["out_of_order"]) == (0, 0, 0),
        f"every socket connected ({connected}/{clients})": connected == clients,
        f"memory flat (last minute within {MEMORY_GROWTH:.0%} of the first)": (
            rss_last <= rss_first * (1 + MEMORY_GROWTH)
        ),
        f"file descriptors flat (within {FD_SLACK})": fd_last <= fd_first + FD_SLACK,
        f"p99 flat (last minute within {P99_GROWTH:.0%} of the first)": (
            p99_first is None or p99_last is None or p99_last <= p99_first * (1 + P99_GROWTH)
        ),
    }
    lines = [
        "# Soak test",
        "",
        f"{clients} sockets in {rooms} rooms, 2 messages a second per room, for {seconds:.0f} s, on "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python {platform.python_version()}.",
        "",
        "Command: `make soak` (`python bench/soak.py`), which ran:",
        "",
        "    " + " ".join(Path(c).name if c == sys.executable else c for c in command),
        "",
        "## Verdict",
        "",
        *[f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items()],
        "",
        f"Deliveries: {d['received']:,} of {d['expected']:,} ({d['per_second']:,.0f}/s); "
        f"lost {d['lost']}, duplicated {d['duplicated']}, out of order {d['out_of_order']}. "
        f"Latency p50 {report['latency_ms']['p50']:.1f} ms, p99 {report['latency_ms']['p99']:.1f} ms, "
        f"max {report['latency_ms']['max']:.1f} ms. Errors: {errors}.",
        f"Server memory {rss_first:.1f} MB -> {rss_last:.1f} MB; descriptors {fd_first} -> {fd_last}; "
        f"p99 per 10 s {p99_first if p99_first is None else f'{p99_first:.1f}'} ms -> "
        f"{p99_last if p99_last is None else f'{p99_last:.1f}'} ms (medians of the first and last minute).",
        "",
        "## Samples, every 10 s",
        "",
        "| t (s) | server RSS (MB) | open fds | p99 of the window (ms) |",
        "|---:|---:|---:|---:|",
    ]
    windows = _windows(report, int(SAMPLE_S))
    for i, s in enumerate(samples):
        p99 = windows[i] if i < len(windows) else None
        lines.append(f"| {s.t:.0f} | {s.rss_mb:.1f} | {s.fds} | {'' if p99 is None else f'{p99:.1f}'} |")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: lines.index("## Samples, every 10 s")]))
    return 0 if all(checks.values()) else 1


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    clients = int(os.environ.get("SOAK_CLIENTS", "10000"))
    out = Path(os.environ.get("SOAK_REPORT", str(REPO / "bench" / "soak.md")))
    return asyncio.run(soak(seconds, clients, out))


if __name__ == "__main__":
    sys.exit(main())
