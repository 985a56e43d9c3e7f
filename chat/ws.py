"""The WebSocket adapter: frames in, service, frames out. No chat rule lives here."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import tornado.websocket

from chat.service import ChatService, Peer
from chat.web import read_login_cookie

log = logging.getLogger(__name__)


def _retrieve(future: asyncio.Future[None]) -> None:
    # A write to a socket that closed meanwhile fails; the close itself is
    # handled by on_close, so the failure needs no further action.
    if not future.cancelled():
        future.exception()


class ChatSocket(tornado.websocket.WebSocketHandler):
    """``/ws``: one member connection. Implements :class:`chat.service.Connection`."""

    service: ChatService
    allowed_origins: frozenset[str]
    peer: Peer | None = None

    def initialize(self, service: ChatService, allowed_origins: frozenset[str]) -> None:
        self.service = service
        self.allowed_origins = allowed_origins

    def check_origin(self, origin: str) -> bool:
        # Without --allow-origin only the page's own origin may open a socket,
        # which stops cross-site WebSocket hijacking with the login cookie.
        # Scripts send no Origin header and are not checked.
        if self.allowed_origins:
            return origin.rstrip("/").lower() in self.allowed_origins
        return super().check_origin(origin)

    def open(self, *args: str, **kwargs: str) -> None:
        name = self.get_query_argument("name", None)
        token = self.get_query_argument("session", None)
        if name is None:
            login = read_login_cookie(self)
            if login is not None:
                name = login["name"]
                token = token or login["session"]
        self.peer = self.service.open(self, name, token)

    async def on_message(self, message: str | bytes) -> None:
        # Tornado awaits this before reading the next frame, so the frames of
        # one connection are handled in order.
        if self.peer is None:
            return
        if isinstance(message, bytes):
            self.service.handle_binary(self.peer)
            return
        await self.service.handle_text(self.peer, message)

    def on_close(self) -> None:
        if self.peer is not None:
            self.service.disconnect(self.peer)

    # -- chat.service.Connection ---------------------------------------------

    def send(self, text: str) -> None:
        try:
            future: Any = self.write_message(text)
        except tornado.websocket.WebSocketClosedError:
            return
        future.add_done_callback(_retrieve)
