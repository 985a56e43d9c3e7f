"""Request correlation: requests waiting for their answer, by ref, and the order they go out in.

Every request carries a unique ``ref`` and the server's answer carries it
back. :class:`PendingRequests` keeps what waits to be sent and answered, sends
a room's ``join``/``leave``/``say``/``edit``/``delete``/``react`` one at a
time in call order (see :class:`chat.client.ChatClient`, "Order"), retries what the server dropped
without acting on it, and paces what it writes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chat.client.errors import ChatError, Disconnected, fresh

# Named for the package, not this module: it is what users configure.
log = logging.getLogger("chat.client")

Frame = dict[str, Any]

# Errors after which the server dropped the frame without acting on it, so
# sending it again is safe and usually succeeds a moment later. Servers no
# longer send ``rate_limited`` (they read a fast sender's frames later
# instead); older ones did.
RETRYABLE_ERRORS = frozenset({"rate_limited", "unavailable"})
# How often such a request is tried again before its caller gets the error.
MAX_ERROR_RETRIES = 5
# First delay before retrying a refused frame (it doubles, with jitter): a rate
# limit of 20 frames/s has a token again within 50 ms, a store hiccup takes longer.
ERROR_RETRY_BASE_S = 0.25
# Requests that change what a room holds or who is in it. Those to one room go
# out one at a time, in call order (see ChatClient, "Order").
# Edits, deletions and reactions too: two edits of one message must land in
# the order they were made (the last one wins).
ROOM_ORDERED = frozenset({"join", "leave", "say", "edit", "delete", "react"})


def room_key(room: str) -> str:
    # The server's normalization (chat.core.validation.normalize_room), so that
    # "Lobby" and "lobby " share one line.
    return room.strip().lower()


@dataclass(eq=False)
class Request:
    """A frame waiting to be sent and, when it has a ref, answered."""

    frame: Frame
    future: asyncio.Future[Frame] | None = None
    # Kept across reconnects and sent again (every request is idempotent: say,
    # edit, delete and react by their ref, the others by nature). Internal requests tied to one connection
    # (rejoins, gap fetches) are not: the next connection makes its own.
    resend: bool = True
    # At most once: kept while the socket is down, but once written, not sent
    # again after a drop (the caller gets Disconnected): a ``create`` resent
    # would make a second private room, a ``remove`` or ``unban`` resent would
    # be refused (not_found) for what was done.
    once: bool = False
    sent: bool = False
    on_reply: Callable[[Frame], None] | None = None
    on_error: Callable[[Frame], None] | None = None
    queued: bool = False
    retries: int = 0
    # The room whose requests go out one at a time (ROOM_ORDERED); None: no order to keep.
    room: str | None = None

    @property
    def ref(self) -> str | None:
        ref = self.frame.get("ref")
        return ref if isinstance(ref, str) else None


class Pacer:
    """A token bucket for outgoing frames, so the client stays under the server's
    rate limit on its own. The server would read the extra frames later anyway,
    but a reconnect into hundreds of rooms would have its frames read seconds
    late, and 15 s behind the rate closes the connection as a flood."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = max(burst, 1.0)
        self._tokens = self._burst
        self._stamp: float | None = None

    def _refill(self, now: float) -> None:
        if self._stamp is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def take(self) -> None:
        if self._rate <= 0:
            return
        loop = asyncio.get_running_loop()
        self._refill(loop.time())
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self._rate)
            self._refill(loop.time())
        self._tokens -= 1


class PendingRequests:
    """Requests by ref, each room's line of ordered requests, and the queue to the socket.

    ``online`` says whether a connection is up: requests made while it is down
    wait for :meth:`reconnected`."""

    def __init__(self, pacer: Pacer, rng: random.Random) -> None:
        self._pacer = pacer
        self._rng = rng
        self._ref_prefix = secrets.token_hex(6)
        self._ref_counter = itertools.count(1)
        self._requests: dict[str, Request] = {}
        # Per room, its ROOM_ORDERED requests not yet answered, in call order:
        # only the first is on the wire; the others wait for it.
        self._lines: dict[str, deque[Request]] = {}
        self._unsent: deque[Request] = deque()
        self._wake = asyncio.Event()
        self.online = False

    def new_ref(self) -> str:
        # Unique per session for the server's 10-minute idempotency window: a
        # random prefix per client (another client may share the session) and a counter.
        return f"{self._ref_prefix}-{next(self._ref_counter)}"

    def submit(
        self,
        frame: Frame,
        *,
        resend: bool = True,
        once: bool = False,
        on_reply: Callable[[Frame], None] | None = None,
    ) -> asyncio.Future[Frame]:
        """Give ``frame`` a ref and send it (now, or when its turn and a connection come)."""
        frame["ref"] = ref = self.new_ref()
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        req = Request(frame, future, resend=resend, once=once, on_reply=on_reply)
        self._requests[ref] = req
        # Cancelled or answered: never send it again.
        future.add_done_callback(lambda _: self._forget(req))
        if frame["type"] in ROOM_ORDERED and isinstance(frame.get("room"), str):
            req.room = room_key(frame["room"])
            self._lines.setdefault(req.room, deque()).append(req)
        if self.online and self._first_in_line(req):
            self.enqueue(req)
        return future

    def enqueue(self, req: Request) -> None:
        """Queue ``req`` for the socket now (no ref: fire and forget)."""
        req.queued = True
        self._unsent.append(req)
        self._wake.set()

    async def outgoing(self) -> str:
        """The next frame to write, paced: waits until one is due."""
        while True:
            if not self._unsent:
                self._wake.clear()
                await self._wake.wait()
                continue
            req = self._unsent.popleft()
            req.queued = False
            if req.ref is not None and self._requests.get(req.ref) is not req:
                continue  # answered, given up or cancelled meanwhile
            await self._pacer.take()
            req.sent = True
            return json.dumps(req.frame, ensure_ascii=False, separators=(",", ":"))

    def reconnected(self, first: list[Request]) -> None:
        """A new connection: send ``first`` (rejoins), then each room's head of line and the rest."""
        self.online = True
        # Each room's first request in line, not those behind it: they follow once it is answered.
        carried = [r for r in self._requests.values() if r.resend and self._first_in_line(r)]
        for req in first:
            self._requests[req.ref or ""] = req
        # Rejoins first: a resent say needs its room joined on this connection.
        for req in first + carried:
            req.queued = True
            self._unsent.append(req)
        self._wake.set()

    def disconnected(self) -> None:
        """The socket is gone: forget what belonged to it, keep what gets resent."""
        self.online = False
        for req in self._unsent:
            req.queued = False
        self._unsent.clear()
        for ref, req in list(self._requests.items()):
            if not req.resend:
                del self._requests[ref]
                if req.future is not None and not req.future.done():
                    req.future.set_exception(Disconnected("the connection dropped"))
            elif req.once and req.sent:
                del self._requests[ref]
                if req.future is not None and not req.future.done():
                    req.future.set_exception(
                        Disconnected(f"the connection dropped before the {req.frame.get('type')} was answered")
                    )

    def fail_all(self, error: ChatError) -> None:
        """The client is done: every waiting call raises ``error``."""
        self.online = False
        for req in list(self._requests.values()):
            if req.future is not None and not req.future.done():
                req.future.set_exception(fresh(error))
        self._requests.clear()
        self._lines.clear()
        self._unsent.clear()

    def match(self, frame: Frame) -> Request | None:
        """The pending request ``frame`` answers (by its ref), if any."""
        ref = frame.get("ref")
        return self._requests.get(ref) if isinstance(ref, str) else None

    def settle(self, req: Request, reply: Frame) -> None:
        """``reply`` answers ``req``: its caller gets it, the next in its room's line goes."""
        self._forget(req)
        # Runs before the next frame is read, so a room's state exists before its first live message.
        if req.on_reply is not None:
            req.on_reply(reply)
        if req.future is not None and not req.future.done():
            req.future.set_result(reply)

    def refused(self, req: Request, frame: Frame) -> None:
        """An ``error`` answers ``req``: sent again later if retryable, else raised to its caller."""
        code = str(frame.get("code", "error"))
        message = str(frame.get("message", ""))
        if code in RETRYABLE_ERRORS and req.retries < MAX_ERROR_RETRIES:
            req.retries += 1
            req.sent = False  # the server did not act on it: safe to send again after a drop
            delay = self._rng.uniform(ERROR_RETRY_BASE_S, ERROR_RETRY_BASE_S * 2**req.retries)
            log.info("%s refused with %s; retrying in %.2fs", req.frame.get("type"), code, delay)
            asyncio.get_running_loop().call_later(delay, self._retry, req)
            return
        self._forget(req)
        if req.on_error is not None:
            req.on_error(frame)
        if req.future is not None and not req.future.done():
            req.future.set_exception(ChatError(code, message))

    def _first_in_line(self, req: Request) -> bool:
        """True unless ``req`` waits behind an earlier request to its room."""
        return req.room is None or self._lines[req.room][0] is req

    def _forget(self, req: Request) -> None:
        if req.ref is not None and self._requests.get(req.ref) is req:
            del self._requests[req.ref]
        room, req.room = req.room, None  # out of its line; a second call finds nothing to do
        line = self._lines.get(room) if room is not None else None
        if room is None or line is None:
            return
        if line[0] is not req:
            line.remove(req)  # cancelled while waiting in line
            return
        # Answered, given up or cancelled: the next in line goes now.
        line.popleft()
        if not line:
            del self._lines[room]
        elif self.online and not line[0].queued:
            self.enqueue(line[0])

    def _retry(self, req: Request) -> None:
        # Skipped if answered, closed, or already queued again by a reconnect.
        if not self.online or req.queued or req.ref is None or self._requests.get(req.ref) is not req:
            return
        self.enqueue(req)
