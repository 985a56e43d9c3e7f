"""A WebSocket client connection: the ``websockets`` library's Sans-I/O protocol under an asyncio Protocol.

Why not ``websockets.asyncio.client.connect``: its ``recv()`` hands each
message through a queue and a future to a reading task. At tens of thousands
of deliveries a second that plumbing costs more than the load tester's own
work, and the load generator must not be the bottleneck. Here the library's
``ClientProtocol`` still does the handshake, frame parsing, masking, pings and
the closing handshake; incoming text frames go straight to a callback, in the
event loop's ``data_received``, a whole TCP read at a time.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri


class HandshakeFailed(Exception):
    """The server refused the upgrade or the connection dropped before it completed."""


TextHandler = Callable[[bytes], None]
CloseHandler = Callable[["Connection", int, str], None]


class Connection(asyncio.Protocol):
    """One client socket. ``on_text`` gets each text message's payload (UTF-8 bytes).

    ``on_close(connection, code, reason)`` is called once when the socket is
    gone; ``connection.deliberate`` tells a close or abort of our own from one
    by the server or the network (code 1006 when no close frame came).
    """

    def __init__(self, url: str, on_text: TextHandler, on_close: CloseHandler, max_size: int) -> None:
        self.uri = parse_uri(url)
        self.protocol = ClientProtocol(self.uri, max_size=max_size)  # no extensions: no compression
        self.on_text = on_text  # may be swapped for a faster handler once the connection is set up
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.deliberate = False
        loop = asyncio.get_running_loop()
        self._opened: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._fragments: list[bytes] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        on_text: TextHandler,
        on_close: CloseHandler,
        *,
        max_size: int,
        ssl_context: ssl.SSLContext | None = None,
        local_addr: tuple[str, int] | None = None,
    ) -> Connection:
        """Connect and complete the opening handshake; raises OSError or :class:`HandshakeFailed`."""
        conn = cls(url, on_text, on_close, max_size)
        loop = asyncio.get_running_loop()
        uri = conn.uri
        if uri.secure:
            await loop.create_connection(
                lambda: conn,
                uri.host,
                uri.port,
                ssl=ssl_context or ssl.create_default_context(),
                server_hostname=uri.host,
                local_addr=local_addr,
            )
        else:
            await loop.create_connection(lambda: conn, uri.host, uri.port, local_addr=local_addr)
        try:
            await conn._opened
        except BaseException:
            conn.abort()
            raise
        return conn

    @property
    def open_now(self) -> bool:
        return self.protocol.state is State.OPEN

    def send_text(self, text: str) -> bool:
        """Queue one text message; False when the connection is no longer open."""
        if self.protocol.state is not State.OPEN:
            return False
        self.protocol.send_text(text.encode())
        self._flush()
        return True

    async def close(self, timeout: float) -> None:
        """Closing handshake (1000), then wait for the server to close TCP; abort after ``timeout``."""
        self.deliberate = True
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(1000)
            self._flush()
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except TimeoutError:
            self.abort()
            await self._closed

    def abort(self) -> None:
        """Drop the TCP connection at once: no close frame, no FIN (a crash or a pulled cable)."""
        self.deliberate = True
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        self._flush()  # pongs, the answer to a close frame
        for event in events:
            if isinstance(event, Frame):
                opcode = event.opcode
                # Frames parsed from the network hold bytes (the type allows any buffer).
                payload = cast(bytes, event.data)
                if opcode is Opcode.TEXT:
                    if event.fin:
                        self.on_text(payload)
                    else:
                        self._fragments = [payload]
                elif opcode is Opcode.CONT and self._fragments is not None:
                    self._fragments.append(payload)
                    if event.fin:
                        whole = b"".join(self._fragments)
                        self._fragments = None
                        self.on_text(whole)
            elif not self._opened.done():  # the handshake response
                if protocol.handshake_exc is not None:
                    self._opened.set_exception(protocol.handshake_exc)
                else:
                    self._opened.set_result(None)
        if protocol.handshake_exc is not None and not self._opened.done():
            self._opened.set_exception(protocol.handshake_exc)

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        return None  # close the transport: nothing is written after the peer's EOF

    def connection_lost(self, exc: Exception | None) -> None:
        protocol = self.protocol
        protocol.receive_eof()  # idempotent; the state is CLOSED from here on
        if not self._opened.done():
            cause = protocol.handshake_exc or exc
            self._opened.set_exception(HandshakeFailed(f"closed during the handshake: {cause}"))
            self._opened.exception()  # retrieved: open() may already have given up
        self._closed.set_result(None)
        code = protocol.close_code
        self.on_close(self, 1006 if code is None else int(code), protocol.close_reason or "")

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
