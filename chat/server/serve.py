"""Serve one process: the HTTP server, its listening sockets, and a graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl

import tornado.httpserver
import tornado.web

from chat.server.app import ChatApplication, make_app
from chat.server.metrics import Cluster
from chat.server.options import Settings

log = logging.getLogger("chat.server")

# Sockets get this long to take their 1001 close before they are dropped, which
# keeps a graceful shutdown within 5 s even with unresponsive clients.
CLOSE_GRACE_S = 2.0
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
    # Handlers before the "chat server on" line: whoever waits for that line
    # (a supervisor, a test) may send SIGTERM at once, and must get a clean stop.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    scheme = "https" if settings.tls else "http"
    history = f"redis {settings.redis}" if settings.redis else settings.db
    log.info("chat server on %s://%s:%d/ (history: %s)", scheme, settings.host, settings.port, history)
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
