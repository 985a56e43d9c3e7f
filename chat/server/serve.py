"""Serve one process: the HTTP server, its listening sockets, and a graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import tornado.httpserver
import tornado.web

from chat.backends.base import SchemaTooNew
from chat.backends.factory import is_postgres
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
# The exit status of a server that cannot run on what it was given (bad
# options, a database newer than itself): restarting it would not help.
EXIT_REFUSED = 2


def masked(url: str) -> str:
    """``url`` with any password (``user:PASSWORD@`` or ``?password=``) shown as ``***``; a file path as it is."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        query = [(key, "***" if key == "password" else value) for key, value in query]
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))
    return urlunsplit(parts._replace(netloc=netloc))


def backends(settings: Settings) -> str:
    """What this server stores history in and fans out through, for the log (no passwords)."""
    store = f"PostgreSQL {masked(settings.db)}" if is_postgres(settings.db) else f"SQLite {settings.db}"
    broker = f"Redis {masked(settings.redis)}" if settings.redis else "in-process"
    return f"history: {store}; broker: {broker}"


def refuse(exc: SchemaTooNew) -> int:
    """Say why the server cannot start on this database, on stderr; the exit status."""
    # The name it was started by, as argparse says it (chat.server.options).
    prog = "chat-server" if sys.argv and sys.argv[0].endswith("chat-server") else "server.py"
    print(f"{prog}: cannot start: {exc}", file=sys.stderr, flush=True)
    return EXIT_REFUSED


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
    app = make_app(settings, cluster=cluster)  # SQLite opens (and migrates) its file here
    try:
        await app.chat.start()  # PostgreSQL connects (and migrates) here
    except BaseException:
        # The broker may be connected already: close it, then say why (the caller).
        with contextlib.suppress(Exception):
            await app.chat.stop()
        raise
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
    log.info("chat server on %s://%s:%d/ (%s)", scheme, settings.host, settings.port, backends(settings))
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
