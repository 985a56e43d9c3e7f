"""The async Python client of the chat service.

::

    async with ChatClient("ws://127.0.0.1:8888/ws", token=os.environ["CHAT_TOKEN"]) as client:
        joined = await client.join("lobby")
        message = await client.say("lobby", "hello")
        async for event in client:
            ...

With ``token=`` (an account's token for scripts) the client signs in as that
account on every connection (``Authorization: Bearer``); with ``name=`` it is
a guest, if the server admits guests. The client keeps one WebSocket open and
reconnects by itself when it drops: it presents its token or guest session
again (same identity, same name), rejoins its
rooms from the last seq it saw and resends what was not acknowledged, with the
original refs, so the server stores nothing twice. ``python -m chat.client
--help`` describes the command line. The wire protocol is in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import tornado.httpclient
import tornado.websocket

from chat.client.account import AccountCalls
from chat.client.changes import RoomChanges
from chat.client.errors import ChatClosed, ChatError, Disconnected, fresh
from chat.client.pending import Pacer, PendingRequests, Request
from chat.client.rooms import ROOM_EVENTS, JoinedRooms
from chat.client.transport import Link, Transport

# Named for the package, not this module: it is what users configure.
log = logging.getLogger("chat.client")

Frame = dict[str, Any]

# A resuming ``joined`` carries up to 1000 messages of up to 4000 characters
# each (16 MB in the worst UTF-8 case); Tornado's default 10 MiB limit would
# make such a resume fail and retry forever.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024


class ChatClient(AccountCalls, RoomChanges):
    """A chat connection that survives disconnects. Use it as ``async with``.

    Requests (:meth:`join`, :meth:`say`, :meth:`leave`, :meth:`history`,
    :meth:`rooms`, :meth:`ping`, :meth:`edit`, :meth:`delete`, :meth:`react`,
    :meth:`mark_read`, :meth:`search`) carry a unique ``ref`` and return the
    server's reply to that ref; an ``error`` reply raises :class:`ChatError`
    with the server's code. A request made while the socket is down waits for
    the next connection; one that was sent but not answered when it dropped is
    sent again (a ``say``, ``edit``, ``delete`` or ``react`` with its original
    ref, so the server stores it once and answers with the original event).
    ``unavailable`` answers (and ``rate_limited``, from servers older than
    this client) are retried a few times before they are raised. Cancel a call
    (``asyncio.wait_for``) to stop waiting; it is then no longer sent.

    Order: the :meth:`say`, :meth:`edit`, :meth:`delete`, :meth:`react`,
    :meth:`join` and :meth:`leave` calls for one room reach the server in the
    order they were made, and its events are stored in that order, whatever fails on the way: 50 ``say`` calls under
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

    - room events: ``message``, ``edit`` (``target``: the message's seq, its new
      ``text``), ``delete`` (``target``) and ``reaction`` (``target``, ``emoji``,
      ``on``). Every change to a room takes the room's next seq, so these are
      one log: each event is yielded exactly once, in seq order per room,
      starting after the room's ``last_seq`` at the first :meth:`join` (that
      join's ``history``, messages as they are now, is in its return value and
      not yielded again; with ``join(room, since=S)`` every event after S is
      yielded). Events missed while disconnected, or skipped by the server (a
      seq jump, a ``joined`` with ``"truncated": true``, a ``gap`` frame), are
      fetched and yielded in their place; later live events wait for them. An
      edit or a deletion made while we were away is never missed. Your own
      events are yielded too (with their ``ref``).
    - ``read`` (``room``, ``seq``, ``unread``, ``mentions``): our account marked a
      room read on another connection (a phone, another tab).
    - ``welcome`` on every (re)connection, and after a reconnect one ``joined``
      per rejoined room, without its ``history`` (those messages are yielded
      as ``message`` events).
    - ``presence``, ``typing``, ``error`` frames that answer no pending request
      (e.g. a ``typing`` in a room not joined), and any frame type this client does not know.
    - ``removed`` (``{"room": R, "reason": "removed"|"banned"|"left"}``): we are
      out of R; nothing more from it follows and reconnects do not rejoin it.
    - ``invited`` (``{"room": {...}}``): our account was added to a room (an
      invite, a DM, a room we created); ``role``: someone's role in a room changed.
      :attr:`my_rooms` follows both.

    Replies to requests are not yielded. Iteration ends after :meth:`close`;
    when the server refuses the client for good (close 1008 ``name_taken`` or
    ``bad_name``, a session ended: ``signed_out`` or ``account_disabled``, an
    HTTP 4xx: ``unauthorized`` for a 401) it raises :class:`ChatRefused` once the events
    before it are consumed. Up to ``max_queue`` events wait to be consumed;
    beyond that the oldest are dropped with a warning (``None``: no bound, ``0``:
    keep none, for a client that never iterates).

    Reconnects use exponential backoff with full jitter: a random delay between
    0 and ``min(backoff_cap, backoff_base * 2**attempt)`` seconds.
    """

    def __init__(
        self,
        url: str,
        name: str | None = None,
        *,
        token: str | None = None,
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
        """``token`` signs in as the account it belongs to (its name comes from the
        server: ``name`` is not sent). Without it, ``name`` is a guest's name and
        ``session`` resumes an earlier guest session (its name stays ours). ``rate``
        and ``burst`` pace outgoing frames (0 disables pacing): the defaults stay
        under the server's default limit of 20/s with a burst of 40.
        ``ping_interval`` (0 disables) finds a dead connection. ``cafile``
        trusts the CA certificates in that PEM file for ``wss://``, besides
        the system's."""
        if token is None and not name:
            raise ValueError("a name (a guest) or a token (an account) is needed")
        if token is not None and session is not None:
            raise ValueError("session= resumes a guest; with a token the account is the identity")
        super().__init__()
        self._ping_interval = ping_interval
        self._max_queue = max_queue
        self._max_message_size = max_message_size
        rng = rng if rng is not None else random.Random()
        self._pending = PendingRequests(Pacer(rate, burst), rng)
        link = Link(self._attached, self._received, self._detached, self._finish, self._pending.outgoing)
        self._transport = Transport(
            url,
            name,
            link,
            self._dial,
            session=session,
            token=token,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            connect_timeout=connect_timeout,
            rng=rng,
            cafile=cafile,
        )
        self._rooms = JoinedRooms(
            self._emit,
            lambda frame: self._request(frame, resend=False),
            lambda: self._transport.conn is not None and not self._ended,
            self._pending.new_ref,
        )
        self._events: deque[Frame] = deque()
        self._has_events = asyncio.Event()
        self._dropped_events = 0
        self._ended = False
        self._failure: ChatError | None = None

    # -- public properties -------------------------------------------------------

    @property
    def name(self) -> str:
        """The name the server gave us (trimmed), once connected."""
        return self._transport.name

    @property
    def session(self) -> str | None:
        """A guest's session token: pass it as ``session=`` to resume this identity later
        (None with a token: the token is the identity)."""
        return self._transport.session

    @property
    def connected(self) -> bool:
        """True while a socket is open and welcomed; False while reconnecting or closed."""
        return self._transport.conn is not None and not self._transport.closing

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self) -> Self:
        """Open the first connection. Raises :class:`ChatRefused` (name taken,
        bad name, HTTP 4xx) or :class:`Disconnected`/``OSError`` when the server
        cannot be reached; from then on the client reconnects by itself."""
        if self._transport.runner is not None or self._transport.closing:
            raise RuntimeError("connect() was already called")
        await self._transport.start()
        return self

    async def close(self) -> None:
        """Close the socket and stop reconnecting. Pending calls raise
        :class:`ChatClosed`; iteration ends once queued events are consumed."""
        await self._transport.close()
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
        return await self._request(frame, on_reply=lambda reply: self._rooms.joined(reply, since))

    async def leave(self, room: str) -> Frame:
        """Leave ``room``; returns the ``left`` frame. Its messages stop at once."""
        self._rooms.left(room)
        return await self._request({"type": "leave", "room": room})

    async def say(self, room: str, text: str) -> Frame:
        """Send ``text`` to ``room``; returns the stored ``message`` (with seq, ts
        and our ref) once the server acknowledges it, across reconnects."""
        return dict(await self._request({"type": "say", "room": room, "text": text}))

    async def typing(self, room: str) -> None:
        """Tell the room's other members we are typing. Fire and forget: dropped while disconnected."""
        self._check_usable()
        if self._transport.conn is not None:
            self._pending.enqueue(Request({"type": "typing", "room": room}, resend=False))

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
        """The rooms we may see (public rooms, and an account's own):
        ``[{"room": R, "title": T, "visibility": V, "kind": K, "members": n, "last_seq": N}]``."""
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
            if self._transport.runner is None:
                raise RuntimeError("connect() first, or use 'async with'")
            self._has_events.clear()
            await self._has_events.wait()
        return self._events.popleft()

    # -- the transport's link: connections come and go -----------------------------------

    async def _dial(self, request: tornado.httpclient.HTTPRequest) -> tornado.websocket.WebSocketClientConnection:
        """Open one socket. Tests override it to hold a reconnect at a chosen moment."""
        return await tornado.websocket.websocket_connect(
            request,
            ping_interval=self._ping_interval or None,
            max_message_size=self._max_message_size,
        )

    def _attached(self, welcome: Frame) -> None:
        """A welcomed connection: rejoin every room, then send every pending request."""
        self._welcomed(welcome)
        self._emit(welcome)
        self._pending.reconnected(self._rooms.rejoins())

    def _detached(self) -> None:
        """The socket is gone: its room fetches end (the rejoins fetch again)."""
        # Fillers first: cancelling them cancels their requests, which nobody else awaits.
        self._rooms.stop_fills()
        self._pending.disconnected()

    def _received(self, frame: Frame) -> None:
        kind = frame.get("type")
        if kind == "read":  # our answer to mark_read, or another device's: my_rooms follows
            self._track(frame)
        req = self._pending.match(frame)
        if req is not None:
            if kind == "error":
                self._on_request_error(req, frame)
                return
            self._pending.settle(req, frame)
            if kind in ROOM_EVENTS:  # a say's (edit's...) acknowledgement is also a room event
                self._rooms.message(frame)
            return
        if kind in ROOM_EVENTS:
            self._rooms.message(frame)
        elif kind == "gap":
            self._rooms.gap(frame)
        elif kind == "removed":
            # We are out of the room (removed, banned, or we left it for good):
            # its messages stop and reconnects no longer rejoin it.
            self._rooms.left(frame["room"])
            self._track(frame)
            self._emit(frame)
        elif kind in ("invited", "role"):
            self._track(frame)
            self._emit(frame)
        elif kind in ("joined", "left", "history", "rooms", "pong", "created", "done", "members", "search") or (
            kind == "read" and "ref" in frame
        ):
            # The answer to a request already answered (sent twice across a
            # reconnect) or given up: nobody waits for it.
            log.debug("dropping a stale %s reply", kind)
        else:
            self._emit(frame)

    def _on_request_error(self, req: Request, frame: Frame) -> None:
        """An ``error`` answers ``req``: retried, or raised to its caller. Tests watch this hook."""
        self._pending.refused(req, frame)

    def _finish(self, error: ChatError | None) -> None:
        """The client is done (closed, or refused for good): fail what waits, end iteration."""
        if self._ended:
            return
        self._ended = True
        self._failure = error if error is not None else ChatClosed()
        # Fillers first: cancelling them cancels their requests, which nobody else awaits.
        self._rooms.stop_fills()
        self._pending.fail_all(self._failure)
        self._has_events.set()

    def _check_usable(self) -> None:
        if self._transport.runner is None and not self._ended:
            raise RuntimeError("connect() first, or use 'async with'")
        if self._failure is not None:
            raise fresh(self._failure)
        if self._transport.closing:
            raise ChatClosed()

    async def _request(
        self,
        frame: Frame,
        *,
        resend: bool = True,
        once: bool = False,
        on_reply: Callable[[Frame], None] | None = None,
    ) -> Frame:
        self._check_usable()
        if not resend and self._transport.conn is None:
            raise Disconnected("not connected")
        return await self._pending.submit(frame, resend=resend, once=once, on_reply=on_reply)

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
