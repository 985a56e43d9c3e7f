"""The load tester's options: the command line, parsed into one frozen :class:`LoadConfig`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from chat.loadtest.schedule import parse_source_ips
from chat.loadtest.slo import SloError, parse_slo

SCENARIOS = ("chat", "idle", "storm")


@dataclass(frozen=True, slots=True)
class LoadConfig:
    url: str | None = None  # ws://host:port/ws; None until --spawn-server fills it in
    clients: int = 100
    ramp: float = 500.0  # connections per second in total; 0: as fast as the connect limit allows
    rooms: int = 1
    senders: int = 10
    rate: float = 100.0  # messages per second in total
    duration: float = 10.0
    message_bytes: int = 100
    reactions_per_message: float = 0.0  # reactions each sender toggles per say, on average
    scenario: str = "chat"
    storm_fraction: float = 0.2
    stalled: int = 0  # non-sender members that stop reading while messages are sent
    drain: float = 5.0
    source_ips: tuple[str, ...] = ()
    procs: int = 1
    json: str | None = None
    plot: str | None = None
    slo: str | None = None
    cafile: str | None = None
    metrics_url: str | None = None
    server_pid: int | None = None
    spawn_server: bool = False
    server_args: tuple[str, ...] = ()
    name_prefix: str = "lt"
    quiet: bool = False

    @property
    def effective_senders(self) -> int:
        """Senders are the first clients; the idle scenario sends nothing."""
        if self.scenario == "idle":
            return 0
        return min(self.senders, self.clients)

    @property
    def total_messages(self) -> int:
        if self.effective_senders == 0:
            return 0
        return int(self.rate * self.duration)


DESCRIPTION = """\
Load-test the chat server and account for every delivery: each member of a room
must get each message sent while it was a member exactly once, in seq order.

Run the server without its per-connection rate limit for anything but light
loads (server.py --rate 0): otherwise the server reads senders over its rate
later, so their sends fall behind schedule and the latencies are the limit's. It also
caps sockets per client address (--max-connections-per-ip, 1000 by default):
lift it (0) or spread the clients with --source-ips. --spawn-server does both.
"""

EPILOG = """\
examples:
  python -m chat.loadtest --spawn-server --clients 1000 --rooms 1 --senders 10 --rate 40 --duration 10
  python -m chat.loadtest ws://127.0.0.1:8888/ws --clients 200 --slo "p99<100ms,loss=0" --json out.json
  python -m chat.loadtest ws://127.0.0.1:8888/ws --scenario idle --clients 40000 --rooms 400 \\
      --procs 2 --source-ips 127.0.0.2-127.0.0.9 --server-pid 1234

Names: client i of process p connects as <prefix>-<p>-<i>. The chat server keeps
a name reserved for 60 s after its socket closes, so a second run against the same
server within a minute needs another --name-prefix.

Presence: each join is announced to the room's other members, so N members in one
room cost N*N/2 frames while connecting. Spread large idle runs over many rooms.
"""


def build_parser() -> argparse.ArgumentParser:
    d = LoadConfig()
    parser = argparse.ArgumentParser(
        prog="python -m chat.loadtest",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", nargs="?", help="the server's WebSocket URL, e.g. ws://127.0.0.1:8888/ws")
    parser.add_argument("--clients", type=int, default=d.clients, help=f"sockets to open [{d.clients}]")
    parser.add_argument(
        "--ramp", type=float, default=d.ramp, help=f"connections opened per second, in total; 0: no pacing [{d.ramp:g}]"
    )
    parser.add_argument(
        "--rooms", type=int, default=d.rooms, help=f"rooms lt-0, lt-1, ...; clients round-robin [{d.rooms}]"
    )
    parser.add_argument("--senders", type=int, default=d.senders, help=f"the first S clients send [{d.senders}]")
    parser.add_argument(
        "--rate", type=float, default=d.rate, help=f"messages per second in total, on a fixed schedule [{d.rate:g}]"
    )
    parser.add_argument(
        "--duration", type=float, default=d.duration, help=f"seconds of sending (or holding) [{d.duration:g}]"
    )
    parser.add_argument(
        "--message-bytes", type=int, default=d.message_bytes, help=f"message text size [{d.message_bytes}]"
    )
    parser.add_argument(
        "--reactions-per-message",
        type=float,
        default=d.reactions_per_message,
        metavar="R",
        help="after each say, a sender also toggles R reactions (on average; 0.5: every other say) on the newest "
        "message it has seen: events that are not messages take the room's seqs too, and every member is owed "
        "them like messages [0]",
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default=d.scenario, help="chat, idle or storm [chat]")
    parser.add_argument(
        "--storm-fraction",
        type=float,
        default=d.storm_fraction,
        help=f"storm: share of the non-sender sockets dropped mid-run and resumed [{d.storm_fraction:g}]",
    )
    parser.add_argument(
        "--stalled",
        type=int,
        default=d.stalled,
        help="this many non-sender members stop reading when sending starts and read again when it ends: "
        "a test of the server's slow-consumer policy (they get gap notices and fetch the range); "
        "latency figures leave their deliveries out [0]",
    )
    parser.add_argument(
        "--drain", type=float, default=d.drain, help=f"seconds to wait for deliveries after the last send [{d.drain:g}]"
    )
    parser.add_argument(
        "--source-ips",
        default="",
        help="spread client sockets over these source addresses, e.g. 127.0.0.2-127.0.0.9 "
        "(one address has about 28,000 ports to one server)",
    )
    parser.add_argument(
        "--procs", type=int, default=d.procs, help="load-generating processes (a process holds at most ~19,000 sockets)"
    )
    parser.add_argument("--json", metavar="FILE", help="write the full results as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="draw latency percentiles over time and a latency histogram")
    parser.add_argument(
        "--slo",
        help='exit 1 when missed, e.g. "p99<100ms,loss=0"; keys p50 p90 p99 p99.9 max (<, units us ms s), '
        "loss dup ooo errors (= or <=, a count or a %% of the expected deliveries)",
    )
    parser.add_argument("--cafile", help="CA bundle to verify a wss:// server")
    parser.add_argument(
        "--metrics-url", help="the server's Prometheus endpoint [derived from URL: http://host:port/metrics]"
    )
    parser.add_argument(
        "--server-pid",
        type=int,
        help="read the server's CPU time and memory from /proc: PID and every process below it"
        " (a --workers supervisor covers its workers; needed for servers without /metrics)",
    )
    parser.add_argument(
        "--spawn-server",
        action="store_true",
        help="start a server (python -m chat.server.main, --rate 0, no per-address cap, throwaway history)"
        " on a free port, target it, stop it at the end",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the spawned server, repeatable: --server-arg=--history-on-join=0",
    )
    parser.add_argument(
        "--name-prefix", default=d.name_prefix, help=f"client names are PREFIX-PROC-I [{d.name_prefix}]"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> LoadConfig:
    """The command line as a :class:`LoadConfig`; exits with a usage message when it is wrong."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.url is None and not a.spawn_server:
        parser.error("give the server's URL, or --spawn-server")
    if a.url is not None and a.spawn_server:
        parser.error("--spawn-server chooses the URL itself: give one or the other")
    if a.url is not None and urlsplit(a.url).scheme not in ("ws", "wss"):
        parser.error(f"the URL must be ws:// or wss://, not {a.url!r}")
    for name in ("clients", "procs", "rooms"):
        if getattr(a, name) < 1:
            parser.error(f"--{name} must be at least 1")
    for name in ("senders", "rate", "duration", "drain", "ramp", "message_bytes", "reactions_per_message"):
        if getattr(a, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    if not 0 <= a.storm_fraction <= 1:
        parser.error("--storm-fraction must be between 0 and 1")
    if a.procs > a.clients:
        parser.error("--procs must not exceed --clients")
    try:
        source_ips = parse_source_ips(a.source_ips)
    except ValueError as exc:
        parser.error(f"--source-ips: {exc}")
    if a.slo is not None:
        try:
            parse_slo(a.slo)
        except SloError as exc:
            parser.error(f"--slo: {exc}")
    return LoadConfig(
        url=a.url,
        clients=a.clients,
        ramp=a.ramp,
        rooms=a.rooms,
        senders=a.senders,
        rate=a.rate,
        duration=a.duration,
        message_bytes=a.message_bytes,
        reactions_per_message=a.reactions_per_message,
        scenario=a.scenario,
        storm_fraction=a.storm_fraction,
        stalled=a.stalled,
        drain=a.drain,
        source_ips=tuple(source_ips),
        procs=a.procs,
        json=a.json,
        plot=a.plot,
        slo=a.slo,
        cafile=a.cafile,
        metrics_url=a.metrics_url,
        server_pid=a.server_pid,
        spawn_server=a.spawn_server,
        server_args=tuple(a.server_arg),
        name_prefix=a.name_prefix,
        quiet=a.quiet,
    )
