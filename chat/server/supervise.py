"""``--workers N``: a supervisor forks N serving processes on one port and restarts the ones that die."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import replace
from types import FrameType

import tornado.netutil

from chat.backends.base import SchemaTooNew
from chat.server.metrics import MULTIPROC_ENV, Cluster, mark_process_dead
from chat.server.options import Settings, cookie_secret
from chat.server.serve import EXIT_REFUSED, LISTEN_BACKLOG, refuse, serve

log = logging.getLogger("chat.server")

# A worker that dies is started again, unless workers keep dying this often:
# then something is wrong with the setup, and restarting only hides it.
RESTARTS_MAX = 5
RESTARTS_WINDOW_S = 10.0


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
    gracefully; a worker that dies otherwise is started again, unless it
    refused to start (exit status 2: a database newer than the server), which
    stops them all with that status.

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
            except SchemaTooNew as exc:
                code = refuse(exc)
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
    refused = False
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
        code = os.waitstatus_to_exitcode(status)
        if code == EXIT_REFUSED:
            # It cannot run on this setup (a database newer than the server):
            # neither can a restarted one, nor the others. Stop, with its status.
            log.error("worker %d (pid %d) refused to start (see above); stopping", number, pid)
            refused = True
            forward(signal.SIGTERM, None)
            continue
        log.warning("worker %d (pid %d) exited with status %d; starting it again", number, pid, code)
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESTARTS_WINDOW_S] + [now]
        if len(restarts) > RESTARTS_MAX:
            log.error("workers keep dying; stopping")
            forward(signal.SIGTERM, None)
            continue
        spawn(number)
    if refused:
        return EXIT_REFUSED
    return 1 if restarts and len(restarts) > RESTARTS_MAX else 0
