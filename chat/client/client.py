"""The async Python client of the chat service.

::

    async with ChatClient("ws://127.0.0.1:8888/ws", name="bot") as client:
        joined = await client.join("lobby")
        message = await client.say("lobby", "hello")
        async for event in client:
            ...

The client keeps one WebSocket open and reconnects by itself when it drops:
it presents its session token again (same identity, same name), rejoins its
rooms from the last seq it saw and resends what was not acknowledged, with the
original refs, so the server stores nothing twice. ``python -m chat.client
--help`` describes the command line. The wire protocol is in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import secrets
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeGuard
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import tornado.httpclient
import tornado.websocket

from chat.client.cursor import RoomCursor, Verdict
from chat.client.errors import ChatClosed, ChatError, ChatRefused, Disconnected, fresh

# Named for the package, not this module: it is what users configure.
log = logging.getLogger("chat.client")

Frame = dict[str, Any]

# The largest page the server's ``history`` request returns; gaps are fetched in pages of this size.
HISTORY_PAGE = 200
# Close codes that mean "this client is refused", not "try again": a name that is
# taken or bad (1008), frames the server cannot take (1003, 1009) or a protocol
# fault (1002, 1007, 1010). Reconnecting would only be refused the same way.
FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
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
ROOM_ORDERED = frozenset({"join", "leave", "say"})
# A connection that stayed up this long was healthy: the backoff starts over.
# A server that accepts and drops at once (crash loop, proxy) is not hammered.
STABLE_AFTER_S = 5.0
# How long close() waits for the server to answer the closing handshake.
CLOSE_TIMEOUT_S = 5.0
# A resuming ``joined`` carries up to 1000 messages of up to 4000 characters
# each (16 MB in the worst UTF-8 case); Tornado's default 10 MiB limit would
# make such a resume fail and retry forever.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024


@dataclass(eq=False)
class _Request:
    """A frame waiting to be sent and, when it has a ref, answered."""

    frame: Frame
    future: asyncio.Future[Frame] | None = None
    # Kept across reconnects and sent again (every request is idempotent: say by
    # its ref, the others by nature). Internal requests tied to one connection
    # (rejoins, gap fetches) are not: the next connection makes its own.
    resend: bool = True
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


@dataclass(eq=False)
class _Room:
    """One joined room: where the client stands in it, and the fetch of what it lacks."""

    cursor: RoomCursor[Frame]
    filler: asyncio.Task[None] | None = None


class _Pacer:
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


def _room_key(room: str) -> str:
    # The server's normalization (chat.core.validation.normalize_room), so that
    # "Lobby" and "lobby " share one line.
    return room.strip().lower()


def _decode(raw: str | bytes) -> Frame | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _seq(message: Frame) -> int:
    seq = message["seq"]
    if not _is_int(seq):
        raise ValueError(f"bad seq {seq!r}")
    return seq


def _ws_url(url: str) -> str:
    """Accept http(s):// and a bare host too: ``http://host:8888`` means ``ws://host:8888/ws``."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a ws://, wss://, http:// or https:// URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit(parts._replace(scheme=scheme, path=path))


class ChatClient:
    """A chat connection that survives disconnects. Use it as ``async with``.

    Requests (:meth:`join`, :meth:`say`, :meth:`leave`, :meth:`history`,
    :meth:`rooms`, :meth:`ping`) carry a unique ``ref`` and return the server's
    reply to that ref; an ``error`` reply raises :class:`ChatError`. A request
    made while the socket is down waits for the next connection; one that was
    sent but not answered when it dropped is sent again (a ``say`` with its
    original ref, so the server stores it once and answers with the original
    message). ``unavailable`` answers (and ``rate_limited``, from servers
    older than this client) are retried a few times before they are raised.
    Cancel a call (``asyncio.wait_for``) to stop waiting; it is then no longer
    sent.

    Order: the :meth:`say`, :meth:`join` and :meth:`leave` calls for one room
    reach the server in the order they were made, and its messages are stored
    in that order, whatever fails on the way: 50 ``say`` calls under
    ``asyncio.gather`` are stored as called. To that end they go out one at a
    time: each waits until the one before it is answered (another room's
    requests, and ``history``/``rooms``/``ping``/``typing``, do not wait).
    Pipelining them cannot keep that promise: if say *k* is refused
    ``unavailable`` (a failed store batch) while *k+1*, already sent, lands in
    the next batch and is stored, *k* can only be stored after it. So after an
    ``unavailable`` the head of the room's line is sent again, after its delay,
    and everything behind it waits; a reconnect or resume sends each room's
    head again with its original ref (the server stores it once) and the rest
    after it. A request that fails for good (an error that is not retried, or
    retries used up) raises, and the next one goes. The cost is a round trip
    and a commit per message of one room: about 1,000 says a second to one
    room over loopback (1,350 pipelined), far above the server's default limit
    of 20 a second, which ``rate`` below keeps to anyway.

    Iterating (``async for event in client``) yields server frames as dicts:

    - ``message``: room messages, each exactly once, in seq order per room,
      starting after the room's ``last_seq`` at the first :meth:`join` (that
      join's ``history`` is in its return value and not yielded again; with
      ``join(room, since=S)`` every message after S is yielded). Messages
      missed while disconnected, or skipped by the server (a seq jump, a
      ``joined`` with ``"truncated": true``, a ``gap`` frame), are fetched and
      yielded in their place; later live messages wait for them. Your own
      messages are yielded too (with their ``ref``).
    - ``welcome`` on every (re)connection, and after a reconnect one ``joined``
      per rejoined room, without its ``history`` (those messages are yielded
      as ``message`` events).
    - ``presence``, ``typing``, ``error`` frames that answer no pending request
      (e.g. a ``typing`` in a room not joined), and any frame type this client does not know.

    Replies to requests are not yielded. Iteration ends after :meth:`close`;
    when the server refuses the client for good (close 1008 ``name_taken`` or
    ``bad_name``, an HTTP 4xx) it raises :class:`ChatRefused` once the events
    before it are consumed. Up to ``max_queue`` events wait to be consumed;
    beyond that the oldest are dropped with a warning (``None``: no bound, ``0``:
    keep none, for a client that never iterates).

    Reconnects use exponential backoff with full jitter: a random delay between
    0 and ``min(backoff_cap, backoff_base * 2**attempt)`` seconds.
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        session: str | None = None,
        backoff_base: float = 0.1,
        backoff_cap: float = 10.0,
        connect_timeout: float = 10.0,
        ping_interval: float = 20.0,
        rate: float = 20.0,
        burst: float = 30.0,
        max_queue: int | None = 10_000,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        rng: random.Random | None = None,
        cafile: str | None = None,
    ) -> None:
        """``session`` resumes an earlier session (its name stays ours). ``rate``
        and ``burst`` pace outgoing frames (0 disables pacing): the defaults stay
        under the server's default limit of 20/s with a burst of 40.
        ``ping_interval`` (0 disables) finds a dead connection. ``cafile``
        trusts the CA certificates in that PEM file for ``wss://``, besides
        the system's."""
        self._base_url = _ws_url(url)
        self._requested_name = name
        self._name = name
        self._session = session
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._max_queue = max_queue
        self._max_message_size = max_message_size
        self._rng = rng if rng is not None else random.Random()
        self._pacer = _Pacer(rate, burst)
        self._ssl: ssl.SSLContext | None = None
        if cafile is not None:
            self._ssl = ssl.create_default_context()
            self._ssl.load_verify_locations(cafile)

        self._ref_prefix = secrets.token_hex(6)
        self._ref_counter = itertools.count(1)
        self._conn: tornado.websocket.WebSocketClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._requests: dict[str, _Request] = {}
        # Per room, its ROOM_ORDERED requests not yet answered, in call order:
        # only the first is on the wire; the others wait for it.
        self._lines: dict[str, deque[_Request]] = {}
        self._unsent: deque[_Request] = deque()
        self._wake = asyncio.Event()
        self._rooms: dict[str, _Room] = {}
        self._events: deque[Frame] = deque()
        self._has_events = asyncio.Event()
        self._dropped_events = 0
        self._closing = False
        self._ended = False
        self._failure: ChatError | None = None

    # -- public properties -------------------------------------------------------

    @property
    def name(self) -> str:
        """The name the server gave us (trimmed), once connected."""
        return self._name

    @property
    def session(self) -> str | None:
        """The session token: pass it as ``session=`` to resume this identity later."""
        return self._session

    @property
    def connected(self) -> bool:
        """True while a socket is open and welcomed; False while reconnecting or closed."""
        return self._conn is not None and not self._closing

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self) -> Self:
        """Open the first connection. Raises :class:`ChatRefused` (name taken,
        bad name, HTTP 4xx) or :class:`Disconnected`/``OSError`` when the server
        cannot be reached; from then on the client reconnects by itself."""
        if self._runner is not None or self._closing:
            raise RuntimeError("connect() was already called")
        conn, welcome = await self._open()
        self._attach(conn, welcome)
        self._runner = asyncio.create_task(self._run(conn))
        return self

    async def close(self) -> None:
        """Close the socket and stop reconnecting. Pending calls raise
        :class:`ChatClosed`; iteration ends once queued events are consumed."""
        if not self._closing:
            self._closing = True
            if self._conn is not None:
                self._conn.close(1000, "client closing")
            elif self._runner is not None:
                self._runner.cancel()  # sleeping before a reconnect, or dialling
        if self._runner is not None and not self._runner.done():
            done, _ = await asyncio.wait([self._runner], timeout=CLOSE_TIMEOUT_S)
            if not done:
                self._runner.cancel()
                await asyncio.wait([self._runner])
        self._finish(None)

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- requests ----------------------------------------------------------------

    async def join(self, room: str, since: int | None = None) -> Frame:
        """Join ``room``; returns the ``joined`` frame (members, last_seq, history).

        With ``since``, every message after that seq is also yielded by the
        iterator (fetching past the server's 1000-message resume limit)."""
        frame: Frame = {"type": "join", "room": room}
        if since is not None:
            frame["since"] = since
        return await self._request(frame, on_reply=lambda reply: self._on_joined(reply, since))

    async def leave(self, room: str) -> Frame:
        """Leave ``room``; returns the ``left`` frame. Its messages stop at once."""
        state = self._rooms.pop(room.strip().lower(), None)
        if state is not None:
            self._stop_filler(state)
        return await self._request({"type": "leave", "room": room})

    async def say(self, room: str, text: str) -> Frame:
        """Send ``text`` to ``room``; returns the stored ``message`` (with seq, ts
        and our ref) once the server acknowledges it, across reconnects."""
        return dict(await self._request({"type": "say", "room": room, "text": text}))

    async def typing(self, room: str) -> None:
        """Tell the room's other members we are typing. Fire and forget: dropped while disconnected."""
        self._check_usable()
        if self._conn is not None:
            self._enqueue(_Request({"type": "typing", "room": room}, resend=False))

    async def history(self, room: str, before: int | None = None, limit: int = 50) -> list[Frame]:
        """Up to ``limit`` (at most 200) messages of a joined room with seq < ``before``
        (the newest when None), in ascending seq."""
        frame: Frame = {"type": "history", "room": room, "limit": limit}
        if before is not None:
            frame["before"] = before
        reply = await self._request(frame)
        messages: list[Frame] = reply.get("messages", [])
        return messages

    async def rooms(self) -> list[Frame]:
        """Every room: ``[{"room": R, "members": n, "last_seq": N}]``."""
        reply = await self._request({"type": "rooms"})
        rooms: list[Frame] = reply.get("rooms", [])
        return rooms

    async def ping(self) -> float:
        """Round trip to the server and back, in seconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._request({"type": "ping"})
        return loop.time() - start

    # -- iteration -----------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Frame:
        while not self._events:
            if self._ended:
                if self._failure is not None and not isinstance(self._failure, ChatClosed):
                    raise fresh(self._failure)
                raise StopAsyncIteration
            if self._runner is None:
                raise RuntimeError("connect() first, or use 'async with'")
            self._has_events.clear()
            await self._has_events.wait()
        return self._events.popleft()

    # -- connection management -------------------------------------------------------

    def _connect_url(self) -> str:
        parts = urlsplit(self._base_url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("name", "session")]
        query.append(("name", self._requested_name))
        if self._session:
            query.append(("session", self._session))
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _dial(self, request: tornado.httpclient.HTTPRequest) -> tornado.websocket.WebSocketClientConnection:
        """Open one socket. Tests override it to hold a reconnect at a chosen moment."""
        return await tornado.websocket.websocket_connect(
            request,
            ping_interval=self._ping_interval or None,
            max_message_size=self._max_message_size,
        )

    async def _open(self) -> tuple[tornado.websocket.WebSocketClientConnection, Frame]:
        """Dial and read the welcome. Raises :class:`ChatRefused` for a refusal
        that retrying cannot fix, ``OSError``/:class:`Disconnected` otherwise."""
        request = tornado.httpclient.HTTPRequest(
            self._connect_url(),
            connect_timeout=self._connect_timeout,
            request_timeout=self._connect_timeout,
            ssl_options=self._ssl,
        )
        try:
            conn = await self._dial(request)
        except tornado.httpclient.HTTPClientError as exc:
            # 599 is Tornado's own timeout/connection failure; 5xx, 408 and 429
            # are a server or proxy that may be back soon. Other 4xx won't change.
            if exc.code >= 500 or exc.code in (408, 429):
                raise Disconnected(f"HTTP {exc.code}: {exc.message}") from exc
            raise ChatRefused(f"http_{exc.code}", f"the server answered HTTP {exc.code} {exc.message}") from exc
        except tornado.websocket.WebSocketError as exc:
            raise Disconnected(f"not a WebSocket answer: {exc}") from exc
        welcomed = False
        try:
            try:
                raw = await asyncio.wait_for(conn.read_message(), self._connect_timeout)
            except TimeoutError:
                raise Disconnected("the server sent no welcome") from None
            if raw is None:
                error = self._close_error(conn.close_code, conn.close_reason)
                if error is not None:
                    raise error
                raise Disconnected(f"closed before the welcome: {conn.close_code} {conn.close_reason or ''}")
            welcome = _decode(raw)
            if welcome is None or welcome.get("type") != "welcome":
                raise Disconnected(f"expected a welcome frame, got {raw[:200]!r}")
            welcomed = True
            return conn, welcome
        finally:
            if not welcomed:
                conn.close()

    @staticmethod
    def _close_error(code: int | None, reason: str | None) -> ChatRefused | None:
        if code not in FATAL_CLOSE_CODES:
            return None
        reason = reason or ""
        return ChatRefused(reason or f"closed_{code}", f"the server closed the connection: {code} {reason}", code)

    def _backoff(self, attempt: int) -> float:
        # Full jitter: clients dropped together by a restart come back spread out.
        return self._rng.uniform(0, min(self._backoff_cap, self._backoff_base * 2 ** min(attempt, 30)))

    async def _run(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        """Serve the connection; when it drops, reconnect until closed or refused."""
        loop = asyncio.get_running_loop()
        attempt = 0
        try:
            while True:
                opened_at = loop.time()
                code, reason = await self._serve(conn)
                self._detach()
                if self._closing:
                    return
                fatal = self._close_error(code, reason)
                if fatal is not None:
                    log.warning("chat server refused %s: %s", self._requested_name, fatal.message)
                    self._finish(fatal)
                    return
                log.info("connection lost (%s %s); reconnecting", code, reason or "")
                if loop.time() - opened_at >= STABLE_AFTER_S:
                    attempt = 0
                while True:
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    try:
                        conn, welcome = await self._open()
                    except ChatRefused as exc:
                        log.warning("chat server refused %s: %s", self._requested_name, exc.message)
                        self._finish(exc)
                        return
                    except OSError as exc:  # Disconnected, refused, reset, Tornado's StreamClosedError
                        log.info("reconnect attempt %d failed: %s", attempt, exc)
                        continue
                    break
                self._attach(conn, welcome)
        except Exception as exc:
            # A bug here must not leave callers waiting forever.
            log.exception("chat client stopped")
            self._finish(ChatError("internal", f"the client stopped: {exc!r}"))

    async def _serve(self, conn: tornado.websocket.WebSocketClientConnection) -> tuple[int | None, str | None]:
        """Read frames until the socket closes; returns the close code and reason."""
        pump = asyncio.create_task(self._pump(conn))
        try:
            while True:
                raw = await conn.read_message()
                if raw is None:
                    return conn.close_code, conn.close_reason
                frame = _decode(raw)
                if frame is None:
                    log.warning("ignoring a frame that is not a JSON object: %.200r", raw)
                    continue
                try:
                    self._dispatch(frame)
                except (KeyError, TypeError, ValueError):
                    log.warning("ignoring a malformed frame: %.200r", raw, exc_info=True)
        finally:
            pump.cancel()
            await asyncio.wait([pump])
            # Also after the server closed: Tornado warns about connections never closed.
            conn.close()

    async def _pump(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        """Send queued frames in order, paced, one connection's worth."""
        try:
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
                await conn.write_message(json.dumps(req.frame, ensure_ascii=False, separators=(",", ":")))
        except tornado.websocket.WebSocketClosedError:
            return  # the read loop sees the close and reconnects
        except Exception:
            log.exception("sending failed; reconnecting")
            conn.close(1011, "client error")

    def _attach(self, conn: tornado.websocket.WebSocketClientConnection, welcome: Frame) -> None:
        """A welcomed connection: rejoin every room, then send every pending request."""
        self._conn = conn
        session, name = welcome.get("session"), welcome.get("name")
        if isinstance(session, str):
            self._session = session
        if isinstance(name, str):
            self._name = name
        self._emit(welcome)
        # Each room's first request in line, not those behind it: they follow once it is answered.
        carried = [r for r in self._requests.values() if r.resend and self._first_in_line(r)]
        rejoins = [self._rejoin_request(room, state) for room, state in self._rooms.items()]
        for req in rejoins:
            self._requests[req.ref or ""] = req
        # Rejoins first: a resent say needs its room joined on this connection.
        for req in rejoins + carried:
            req.queued = True
            self._unsent.append(req)
        self._wake.set()

    def _detach(self) -> None:
        """The socket is gone: forget what belonged to it, keep what gets resent."""
        self._conn = None
        for req in self._unsent:
            req.queued = False
        self._unsent.clear()
        for state in self._rooms.values():
            self._stop_filler(state)
        for ref, req in list(self._requests.items()):
            if not req.resend:
                del self._requests[ref]
                if req.future is not None and not req.future.done():
                    req.future.set_exception(Disconnected("the connection dropped"))

    def _finish(self, error: ChatError | None) -> None:
        """The client is done (closed, or refused for good): fail what waits, end iteration."""
        if self._ended:
            return
        self._ended = True
        self._failure = error if error is not None else ChatClosed()
        # Fillers first: cancelling them cancels their requests, which nobody else awaits.
        for state in self._rooms.values():
            self._stop_filler(state)
        for req in list(self._requests.values()):
            if req.future is not None and not req.future.done():
                req.future.set_exception(fresh(self._failure))
        self._requests.clear()
        self._lines.clear()
        self._unsent.clear()
        self._has_events.set()

    def _check_usable(self) -> None:
        if self._runner is None and not self._ended:
            raise RuntimeError("connect() first, or use 'async with'")
        if self._failure is not None:
            raise fresh(self._failure)
        if self._closing:
            raise ChatClosed()

    # -- requests and replies ----------------------------------------------------------

    def _new_ref(self) -> str:
        # Unique per session for the server's 10-minute idempotency window: a
        # random prefix per client (another client may share the session) and a counter.
        return f"{self._ref_prefix}-{next(self._ref_counter)}"

    def _enqueue(self, req: _Request) -> None:
        req.queued = True
        self._unsent.append(req)
        self._wake.set()

    async def _request(
        self, frame: Frame, *, resend: bool = True, on_reply: Callable[[Frame], None] | None = None
    ) -> Frame:
        self._check_usable()
        if not resend and self._conn is None:
            raise Disconnected("not connected")
        frame["ref"] = ref = self._new_ref()
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        req = _Request(frame, future, resend=resend, on_reply=on_reply)
        self._requests[ref] = req
        # Cancelled or answered: never send it again.
        future.add_done_callback(lambda _: self._forget(req))
        if frame["type"] in ROOM_ORDERED and isinstance(frame.get("room"), str):
            req.room = _room_key(frame["room"])
            self._lines.setdefault(req.room, deque()).append(req)
        if self._conn is not None and self._first_in_line(req):
            self._enqueue(req)
        return await future

    def _first_in_line(self, req: _Request) -> bool:
        """True unless ``req`` waits behind an earlier request to its room."""
        return req.room is None or self._lines[req.room][0] is req

    def _forget(self, req: _Request) -> None:
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
        elif self._conn is not None and not line[0].queued:
            self._enqueue(line[0])

    def _dispatch(self, frame: Frame) -> None:
        kind = frame.get("type")
        ref = frame.get("ref")
        req = self._requests.get(ref) if isinstance(ref, str) else None
        if req is not None:
            if kind == "error":
                self._on_request_error(req, frame)
                return
            self._settle(req, frame)
            if kind == "message":  # a say's acknowledgement is also a room message
                self._on_message(frame)
            return
        if kind == "message":
            self._on_message(frame)
        elif kind == "gap":
            self._on_gap(frame)
        elif kind in ("joined", "left", "history", "rooms", "pong"):
            # The answer to a request already answered (sent twice across a
            # reconnect) or given up: nobody waits for it.
            log.debug("dropping a stale %s reply", kind)
        else:
            self._emit(frame)

    def _settle(self, req: _Request, reply: Frame) -> None:
        self._forget(req)
        # Runs before the next frame is read, so a room's state exists before its first live message.
        if req.on_reply is not None:
            req.on_reply(reply)
        if req.future is not None and not req.future.done():
            req.future.set_result(reply)

    def _on_request_error(self, req: _Request, frame: Frame) -> None:
        code = str(frame.get("code", "error"))
        message = str(frame.get("message", ""))
        if code in RETRYABLE_ERRORS and req.retries < MAX_ERROR_RETRIES:
            req.retries += 1
            delay = self._rng.uniform(ERROR_RETRY_BASE_S, ERROR_RETRY_BASE_S * 2**req.retries)
            log.info("%s refused with %s; retrying in %.2fs", req.frame.get("type"), code, delay)
            asyncio.get_running_loop().call_later(delay, self._retry, req)
            return
        self._forget(req)
        if req.on_error is not None:
            req.on_error(frame)
        if req.future is not None and not req.future.done():
            req.future.set_exception(ChatError(code, message))

    def _retry(self, req: _Request) -> None:
        # Skipped if answered, closed, or already queued again by a reconnect.
        if self._conn is None or req.queued or req.ref is None or self._requests.get(req.ref) is not req:
            return
        self._enqueue(req)

    # -- rooms and ordered delivery ------------------------------------------------------

    def _on_joined(self, reply: Frame, since: int | None) -> None:
        room = reply["room"]
        if room in self._rooms:
            return  # joined twice: our position in the room stands
        last_seq = int(reply["last_seq"])
        state = _Room(RoomCursor(last=last_seq if since is None else min(since, last_seq)))
        self._rooms[room] = state
        if since is not None:
            self._absorb(room, state, reply)

    def _rejoin_request(self, room: str, state: _Room) -> _Request:
        frame: Frame = {"type": "join", "room": room, "since": state.cursor.last, "ref": self._new_ref()}

        def rejoined(reply: Frame) -> None:
            if self._rooms.get(room) is not state:
                return  # left meanwhile
            self._emit({k: v for k, v in reply.items() if k not in ("history", "ref")})
            self._absorb(room, state, reply)

        def refused(error: Frame) -> None:
            # The server won't have us back in this room (e.g. a lower room limit
            # after a restart): tell the consumer and stop tracking the room.
            if self._rooms.get(room) is state:
                del self._rooms[room]
            self._emit({k: v for k, v in error.items() if k != "ref"} | {"room": room})

        return _Request(frame, resend=False, on_reply=rejoined, on_error=refused)

    def _absorb(self, room: str, state: _Room, reply: Frame) -> None:
        """Deliver a since-join's history, then fetch whatever it did not hold."""
        for message in reply.get("history", []):
            self._accept(room, state, message)
        last_seq = reply.get("last_seq")
        if _is_int(last_seq):
            state.cursor.expect(last_seq)
            self._start_fill(room, state)

    def _on_message(self, frame: Frame) -> None:
        room = frame["room"]
        state = self._rooms.get(room)
        if state is None:
            return  # not (or no longer) in that room; a say's ack was settled already
        self._accept(room, state, frame)

    def _on_gap(self, frame: Frame) -> None:
        state = self._rooms.get(frame["room"])
        to_seq = frame.get("to_seq")
        if state is not None and _is_int(to_seq):
            state.cursor.expect(to_seq)
            self._start_fill(frame["room"], state)

    def _accept(self, room: str, state: _Room, message: Frame) -> None:
        """Yield ``message`` in seq order, once; hold it if messages before it are missing."""
        accepted = state.cursor.accept(_seq(message), message)
        for frame in accepted.released:
            self._emit(frame)
        if accepted.verdict is Verdict.HELD:
            self._start_fill(room, state)

    def _start_fill(self, room: str, state: _Room) -> None:
        """Fetch the messages the room's cursor lacks (one fetch per room at a time)."""
        if state.filler is None and state.cursor.fill_after is not None and self._conn is not None and not self._ended:
            state.filler = asyncio.create_task(self._fill(room, state))

    async def _fill(self, room: str, state: _Room) -> None:
        try:
            while (after := state.cursor.fill_after) is not None and self._rooms.get(room) is state:
                reply = await self._request(
                    {"type": "history", "room": room, "after": after, "limit": HISTORY_PAGE}, resend=False
                )
                page = [(_seq(message), message) for message in reply.get("messages", [])]
                filled = state.cursor.page(after, page)
                for message in filled.released:
                    self._emit(message)
                for first, last in filled.skipped:
                    # The server has nothing to fill the hole with: rather than
                    # stall the room forever, the cursor moved on to what it has.
                    log.warning("%s: messages %d to %d are not in history; skipping them", room, first, last)
        except (Disconnected, ChatClosed, ChatRefused):
            return  # the next connection rejoins with since= and fetches again
        except ChatError as exc:
            log.warning("cannot fetch the missing messages of %s: %s", room, exc)
        finally:
            if state.filler is asyncio.current_task():
                state.filler = None

    def _stop_filler(self, state: _Room) -> None:
        if state.filler is not None:
            state.filler.cancel()
            state.filler = None

    def _emit(self, frame: Frame) -> None:
        if self._max_queue == 0:
            return
        if self._max_queue is not None and len(self._events) >= self._max_queue:
            self._events.popleft()
            self._dropped_events += 1
            if self._dropped_events == 1 or self._dropped_events % 1000 == 0:
                log.warning("%d events dropped: nobody is consuming them (see max_queue)", self._dropped_events)
        self._events.append(frame)
        self._has_events.set()
