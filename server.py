"""Start the chat server: ``python server.py --help`` lists the options."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys

import tornado.httpserver
import tornado.web

from chat.app import make_app
from chat.config import Settings, parse_settings

log = logging.getLogger("chat.server")

# Sockets get this long to take their 1001 close before they are dropped, which
# keeps a graceful shutdown within 5 s even with unresponsive clients.
CLOSE_GRACE_S = 2.0


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


async def serve(settings: Settings) -> None:
    app = make_app(settings)
    await app.chat.start()
    server = make_server(app, settings)
    server.listen(settings.port, settings.host)
    scheme = "https" if settings.tls else "http"
    log.info("chat server on %s://%s:%d/ (history: %s)", scheme, settings.host, settings.port, settings.db)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down: closing %d sockets", len(app.chat.peers))
    server.stop()  # stop accepting
    peers = list(app.chat.peers)
    await app.chat.shutdown(peers)
    try:
        await asyncio.wait_for(app.chat.wait_idle(), CLOSE_GRACE_S)
    except TimeoutError:
        log.warning("%d sockets did not close in time", len(app.chat.peers))
    await asyncio.wait_for(server.close_all_connections(), CLOSE_GRACE_S)
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv, os.environ)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
