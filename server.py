"""Start the chat server: ``python server.py --help`` lists the options."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
from dataclasses import replace
from types import FrameType

import tornado.httpserver
import tornado.netutil
import tornado.web

from chat.app import ChatApplication, make_app
from chat.config import Settings, cookie_secret, parse_settings
from chat.metrics import MULTIPROC_ENV, Cluster, mark_process_dead

log = logging.getLogger("chat.server")

# Sockets get this long to take their 1001 close before they are dropped, which
# keeps a graceful shutdown within 5 s even with unresponsive clients.
CLOSE_GRACE_S = 2.0
# A worker that dies is started again, unless workers keep dying this often:
# then something is wrong with the setup, and restarting only hides it.
RESTARTS_MAX = 5
RESTARTS_WINDOW_S = 10.0
# Connections the kernel completes and queues until a process accepts them.
# Tornado's default, 128, fills in a twentieth of a second of a storm of 2,000
# connections a second while the workers are busy; past it the kernel drops
# handshakes and clients retry only after 1 s, 3 s, 7 s. Linux caps it at
# net.core.somaxconn (4096 by default).
LISTEN_BACKLOG = 4096


def make_server(app: tornado.web.Application, settings: Settings) -> tornado.httpserver.HTTPServer:
    """The HTTP server with the handshake limits and, with --certfile, TLS."""
    ssl_context = None
    if settings.certfile:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.certfile, settings.keyfile)
    return tornado.httpserver.HTTPServer(
        app,
        ssl_options=ssl_context,
        idle_connection_timeout=settings.handshake_timeout,
        max_header_size=settings.max_header_bytes,
        # Nothing we serve takes a body bigger than a login form.
        max_body_size=64 * 1024,
    )


async def serve(settings: Settings, sockets: list[socket.socket] | None = None, cluster: Cluster | None = None) -> None:
    app = make_app(settings, cluster=cluster)
    await app.chat.start()
    server = make_server(app, settings)
    if sockets is None:
        server.listen(settings.port, settings.host, backlog=LISTEN_BACKLOG)
    else:
        server.add_sockets(sockets)
    scheme = "https" if settings.tls else "http"
    history = f"redis {settings.redis}" if settings.redis else settings.db
    log.info("chat server on %s://%s:%d/ (history: %s)", scheme, settings.host, settings.port, history)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    await shut_down(app, server)
    log.info("stopped")


async def shut_down(app: ChatApplication, server: tornado.httpserver.HTTPServer, grace: float = CLOSE_GRACE_S) -> None:
    """Stop accepting, close every socket with 1001, and give the sockets and
    then the remaining HTTP connections ``grace`` seconds each: a peer that
    never answers must not hold the shutdown (or the exit status) hostage."""
    log.info("shutting down: closing %d sockets", len(app.chat.peers))
    server.stop()  # stop accepting
    peers = list(app.chat.peers)
    await app.chat.shutdown(peers)
    try:
        await asyncio.wait_for(app.chat.wait_idle(), grace)
    except TimeoutError:
        log.warning("%d sockets did not close in time", len(app.chat.peers))
    try:
        await asyncio.wait_for(server.close_all_connections(), grace)
    except TimeoutError:
        log.warning("HTTP connections did not close in time; dropping them")


def hold_port(host: str, port: int) -> list[socket.socket]:
    """Bind (without listening) every address of ``host`` at ``port`` with
    SO_REUSEPORT: the port stays ours while workers come and go, and a socket
    that does not listen is never handed a connection. Port 0 picks a free one."""
    held: list[socket.socket] = []
    infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    for family, kind, proto, _, address in dict.fromkeys(infos):
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as tornado's bind_sockets does
        if held:  # port 0: every address on the port the first one got
            address = (address[0], held[0].getsockname()[1], *address[2:])
        sock.bind(address)
        held.append(sock)
    return held


def supervise(settings: Settings) -> int:
    """Fork ``settings.workers`` processes that listen on one port.

    Each worker listens on a socket of its own with SO_REUSEPORT, and the
    kernel spreads new connections over them by address hash. One listening
    socket shared by all would hand a connection to whichever worker wakes
    first, and an idle server's first worker tends to win every one. Redis
    makes the workers one chat. SIGTERM and SIGINT are passed on, so each worker shuts down
    gracefully; a worker that dies otherwise is started again.

    The workers' figures meet in a fresh private directory (prometheus_client's
    multiprocess mode), so /metrics on any worker reports the whole server; it
    is removed when the supervisor exits.
    """
    directory = tempfile.mkdtemp(prefix="chat-metrics-")  # mode 0700: only this user reads the figures
    # Set before the fork, so every worker (and anything it runs) sees it.
    os.environ[MULTIPROC_ENV] = directory
    try:
        return _supervise(settings, Cluster(directory, os.getpid()))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _supervise(settings: Settings, cluster: Cluster) -> int:
    held = hold_port(settings.host, settings.port)
    # Resolved once, before the fork: every worker must listen on the same
    # port, and sign cookies and session tokens with the same secret.
    settings = replace(settings, port=held[0].getsockname()[1], cookie_secret=cookie_secret(settings))
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(number: int) -> None:
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            code = 0
            try:
                for sock in held:
                    sock.close()  # the supervisor's hold; the worker's own socket listens
                sockets = tornado.netutil.bind_sockets(
                    settings.port, settings.host, backlog=LISTEN_BACKLOG, reuse_port=True
                )
                asyncio.run(serve(settings, sockets, cluster))
            except BaseException:
                log.exception("worker %d failed", number)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = number

    def forward(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for number in range(settings.workers):
        spawn(number)
    log.info("supervising %d workers on port %d: %s", settings.workers, settings.port, sorted(children))
    restarts: list[float] = []
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        number = children.pop(pid, -1)
        # Its connections and rooms leave the livesum gauges; its counts stay in the totals.
        mark_process_dead(pid, cluster.directory)
        if number < 0 or stopping:
            continue
        log.warning("worker %d (pid %d) exited with status %d; starting it again", number, pid, status)
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESTARTS_WINDOW_S] + [now]
        if len(restarts) > RESTARTS_MAX:
            log.error("workers keep dying; stopping")
            forward(signal.SIGTERM, None)
            continue
        spawn(number)
    return 1 if restarts and len(restarts) > RESTARTS_MAX else 0


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv, os.environ)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s"
        + ("[%(process)d]" if settings.workers > 1 else "")
        + ": %(message)s",
    )
    if settings.workers > 1:
        return supervise(settings)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
