"""What the two Tornado baselines (naive_tornado.py, floor.py) share: the
command line, listening, and a graceful SIGTERM. Only their fan-out differs,
so only their fan-out is what the bench compares.

Both run as scripts (``python bench/floor.py``), so this is imported as a
sibling module, not as part of a package.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import signal
import sys
from collections.abc import Callable, Collection
from typing import Protocol

import tornado.httpserver
import tornado.netutil
import tornado.web

log = logging.getLogger("bench.baseline")

# Far above any frame the load tester sends: the baseline must not be the one to refuse a size.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Time the clients get to answer our 1001 close on SIGTERM: a shutdown stays quick even when they don't.
CLOSE_GRACE_S = 2.0


class Closable(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Members(Protocol):
    """Who is connected, and an event set when the last one has gone."""

    @property
    def connected(self) -> Collection[Closable]: ...

    @property
    def none_connected(self) -> asyncio.Event: ...


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (the hard one cannot be raised here)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def serve(port: int, app: tornado.web.Application, members: Members) -> None:
    """Listen on 127.0.0.1:``port`` (0: a free one, logged) until SIGINT or SIGTERM,
    then close every socket with 1001 and wait up to CLOSE_GRACE_S for them."""
    server = tornado.httpserver.HTTPServer(app)
    sockets = tornado.netutil.bind_sockets(port, "127.0.0.1")
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on ws://127.0.0.1:%d/ws", port)
    await stop.wait()
    server.stop()
    if members.connected:
        for member in list(members.connected):
            member.close(1001, "shutting down")
        try:
            await asyncio.wait_for(members.none_connected.wait(), CLOSE_GRACE_S)
        except TimeoutError:
            log.warning("%d sockets did not close in time", len(members.connected))
    await server.close_all_connections()


def main(doc: str, make: Callable[[], tuple[tornado.web.Application, Members]], argv: list[str] | None = None) -> int:
    """The baseline's command line: ``--port P``; ``make`` builds its app and member set."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port (logged)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    # One log line per connection would be part of what is measured: keep the library quiet.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    raise_fd_limit()

    async def run() -> None:
        app, members = make()
        await serve(args.port, app, members)

    asyncio.run(run())
    return 0
