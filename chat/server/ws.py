"""The WebSocket adapter: frames in, service, frames out. No chat rule lives here."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable

import tornado.iostream
import tornado.websocket

from chat.backends.base import StoreUnavailable
from chat.core.accounts import Accounts
from chat.core.admission import Admission
from chat.core.frames import OutFrame
from chat.core.model import Account
from chat.core.service import ChatService, Peer
from chat.server.web import SESSION_COOKIE, raw_argument, read_login_cookie

log = logging.getLogger(__name__)


class _Protocol(tornado.websocket.WebSocketProtocol13):
    """Tornado's protocol, telling :class:`ChatSocket` about the frames it writes itself.

    The fan-out writes room messages straight to the socket while nothing else
    waits to be written (chat/core/outbox.py). Tornado writes pings, pongs and the
    close frame on its own, all through ``_write_frame``: one that it could not
    write at once must not be overtaken, and nothing may follow a close frame.
    """

    def _write_frame(self, fin: bool, opcode: int, data: bytes, flags: int = 0) -> asyncio.Future[None]:
        future = super()._write_frame(fin, opcode, data, flags)
        handler = self.handler
        if isinstance(handler, ChatSocket):
            handler.tornado_wrote(opcode, future)
        return future


_CLOSE = 0x8  # the opcode of a close frame (RFC 6455 section 5.5.1)


def _retrieve(future: asyncio.Future[None]) -> None:
    # A write to a socket that closed meanwhile fails; the close itself is
    # handled by on_close, so the failure needs no further action.
    if not future.cancelled():
        future.exception()


class ChatSocket(tornado.websocket.WebSocketHandler):
    """``/ws``: one member connection. Implements :class:`chat.core.outbox.Transport`.

    Frames are written as pre-built bytes straight to the connection's
    IOStream: one ``stream.write`` per member per loop tick, with no per-frame
    encoding, Future or Task. Room messages may go further, straight to the
    socket's ``send`` (:meth:`chat.core.outbox.Outbox.attach`), while neither the
    outbox nor Tornado has anything waiting for this socket. This uses Tornado
    internals (``ws_connection.stream``, the unmasked server frame format and
    ``WebSocketProtocol13._write_frame``), which is why Tornado is pinned
    exactly in requirements.txt and tests/core/test_fanout.py checks this path
    against it. With permessage-deflate (``--compress``) frames go through
    ``write_message`` instead, and nothing goes straight to the socket.
    """

    service: ChatService
    accounts: Accounts
    admission: Admission
    allowed_origins: frozenset[str]
    compress: bool
    peer: Peer | None = None
    _admitted: str | None = None  # the client address counted by admission
    _account: Account | None = None  # who the handshake's credentials name
    _session_key: str = ""

    def initialize(
        self,
        service: ChatService,
        accounts: Accounts,
        admission: Admission,
        allowed_origins: frozenset[str],
        compress: bool = False,
    ) -> None:
        self.service = service
        self.accounts = accounts
        self.admission = admission
        self.allowed_origins = allowed_origins
        self.compress = compress

    async def get(self, *args: str, **kwargs: str) -> None:
        # Counted before the upgrade, so a flood of handshakes is refused with
        # a plain HTTP answer and never costs a WebSocket.
        ip = self.request.remote_ip or ""
        refused = self.admission.admit(ip)
        if refused is not None:
            self.set_status(503 if "full" in refused else 429)
            self.finish(refused)
            return
        self._admitted = ip
        try:
            bad = await self._authenticate()
        except StoreUnavailable:
            bad = (503, "unavailable", "the chat is unavailable; try again in a moment")
        if bad is not None:
            # Refused before the upgrade: a script sees the status, never a socket.
            status, code, message = bad
            self._release()
            self.set_status(status)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            if status == 401:
                self.set_header("WWW-Authenticate", 'Bearer realm="chat"')
            self.finish(json.dumps({"code": code, "error": code, "message": message}))
            return
        await super().get(*args, **kwargs)
        if self.ws_connection is None:  # the handshake was refused (403, 400...)
            self._release()

    async def _authenticate(self) -> tuple[int, str, str] | None:
        """Who the handshake says it is: a token (``Authorization: Bearer``), the
        page's session cookie, or neither (a guest, decided in :meth:`open`).
        Returns the refusal for credentials that do not hold."""
        header = self.request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            found = await self.accounts.from_token(token.strip()) if scheme.lower() == "bearer" else None
            if found is None or found[0].disabled:
                return 401, "unauthorized", "this token is not valid (revoked, or its account disabled)"
            self._account, self._session_key = found[0], self.accounts.token_key(found[1])
            return None
        secret = self.get_signed_cookie(SESSION_COOKIE)
        if secret is not None:
            account = await self.accounts.from_session(secret.decode())
            if account is None:
                return 401, "unauthorized", "this session has ended: sign in again"
            self._account, self._session_key = account, self.accounts.session_key(secret.decode())
        return None

    def _release(self) -> None:
        if self._admitted is not None:
            self.admission.release(self._admitted)
            self._admitted = None

    def check_origin(self, origin: str) -> bool:
        # Without --allow-origin only the page's own origin may open a socket,
        # which stops cross-site WebSocket hijacking with the login cookie.
        # Scripts send no Origin header and are not checked.
        if self.allowed_origins:
            return origin.rstrip("/").lower() in self.allowed_origins
        return super().check_origin(origin)

    def get_compression_options(self) -> dict[str, object] | None:
        # Off by default: deflate costs up to ~300 KB per socket and CPU per recipient.
        return {} if self.compress else None

    async def open(self, *args: str, **kwargs: str) -> None:
        # We coalesce frames ourselves; Nagle's algorithm would only hold a
        # reply back for the peer's delayed ACK (about 40 ms).
        self.set_nodelay(True)
        if self._account is not None:
            self.peer = await self.service.open(self, None, None, account=self._account, session_key=self._session_key)
            if self.peer is not None and not self.compress:
                self._offer_direct(self.peer)
            return
        name = self._query("name")
        token = self._query("session", strict=True)
        if name is None:
            login = read_login_cookie(self)
            if login is not None:
                name = login["name"]
                token = token or login["session"]
        # Tornado reads no frame before open() returns.
        self.peer = await self.service.open(self, name, token)
        if self.peer is not None and not self.compress:
            self._offer_direct(self.peer)

    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        protocol = super().get_websocket_protocol()
        if type(protocol) is tornado.websocket.WebSocketProtocol13:
            protocol.__class__ = _Protocol  # same state, one method more: see _Protocol
        return protocol

    def _offer_direct(self, peer: Peer) -> None:
        conn = self.ws_connection
        if not isinstance(conn, _Protocol) or conn.is_closing() or conn.stream is None:
            return
        stream = conn.stream
        peer.outbox.attach(stream.socket.send, self._write_rest)
        if stream.writing():  # the handshake's tail: resolved once everything before it is written
            self._hold(peer, stream.write(b""))

    def tornado_wrote(self, opcode: int, future: asyncio.Future[None]) -> None:
        """Tornado wrote a frame of its own (see _Protocol)."""
        if self.peer is None:
            return
        if opcode == _CLOSE:
            self.peer.outbox.detach()
        elif not future.done():
            self._hold(self.peer, future)

    def _hold(self, peer: Peer, future: asyncio.Future[None]) -> None:
        """No direct write to ``peer``'s socket until ``future`` (a buffered write) is done."""
        peer.outbox.hold()

        def release(done: asyncio.Future[None]) -> None:
            _retrieve(done)
            peer.outbox.release()

        future.add_done_callback(release)

    def _query(self, key: str, *, strict: bool = False) -> str | None:
        """A query argument exactly as sent, control characters included, so
        that ``?name=a%00b`` is refused as ``bad_name`` (see
        :func:`chat.server.web.raw_argument`). A name that is not UTF-8 is a bad name;
        with ``strict`` such a value is None (a session token is then ignored)."""
        return raw_argument(self.request.query_arguments, key, strict=strict)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        # When this returns an awaitable, Tornado awaits it before it reads the
        # connection's next frame, so one connection's frames are handled in
        # order. When it returns None (a say, a ping...), Tornado goes straight
        # on to the next buffered frame: a burst is handled in one go.
        if self.peer is None:
            return None
        if isinstance(message, bytes):
            self.service.handle_binary(self.peer)
            return None
        return self.service.handle_text(self.peer, message)

    def on_close(self) -> None:
        self._release()
        if self.peer is not None:
            self.service.disconnect(self.peer)

    # -- chat.core.outbox.Transport -------------------------------------------------

    def write_frames(self, frames: list[OutFrame]) -> bool:
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            return True  # on_close cleans up; nothing is waiting
        if self.compress:
            return self._write_compressed(frames)
        stream = conn.stream
        if stream is None:
            return True
        data = frames[0].data if len(frames) == 1 else b"".join(f.data for f in frames)
        if not stream.writing():
            # Nothing of Tornado's own (pings, a close) is waiting to be
            # written, so send directly: most writes complete here, without
            # the Future and poller bookkeeping of IOStream.write.
            try:
                sent = stream.socket.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                return True  # the connection is gone; the read side closes it
            if sent == len(data):
                return True
            data = data[sent:]
        return self._write_rest(data)

    def _write_rest(self, data: bytes) -> bool:
        """``data`` after whatever the IOStream holds: True if written at once,
        else :meth:`chat.core.outbox.Outbox.drained` follows once it is."""
        conn = self.ws_connection
        stream = conn.stream if conn is not None else None
        if stream is None:
            return True
        try:
            future = stream.write(data)
        except tornado.iostream.StreamClosedError:
            return True
        if future.done():
            _retrieve(future)
            return True
        future.add_done_callback(self._drained)
        return False

    def _write_compressed(self, frames: list[OutFrame]) -> bool:
        future: asyncio.Future[None] | None = None
        for frame in frames:
            try:
                future = self.write_message(frame.text)
            except tornado.websocket.WebSocketClosedError:
                return True
        assert future is not None
        # Frames are written in order, so the last one done means all are.
        future.add_done_callback(self._drained)
        return False

    def _drained(self, future: asyncio.Future[None]) -> None:
        _retrieve(future)
        if self.peer is not None:
            self.peer.outbox.drained()
