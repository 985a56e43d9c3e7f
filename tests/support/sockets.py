"""Sockets for the tests: a free loopback port, and a JSON WebSocket client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import tornado.websocket
from tornado.httpclient import HTTPRequest

# The load tester's own (``--spawn-server`` needs one too): one definition.
from chat.loadtest.spawn import free_port

__all__ = ["RECV_TIMEOUT_S", "Closed", "Socket", "free_port"]

# Generous: these machines are shared and noisy. Nothing waits this long unless
# a test is failing.
RECV_TIMEOUT_S = 10.0


class Closed(Exception):
    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"socket closed: {code} {reason}")
        self.code = code
        self.reason = reason


class Socket:
    """A tornado WebSocket client speaking JSON frames."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str | HTTPRequest, **kwargs: Any) -> Socket:
        return cls(await tornado.websocket.websocket_connect(url, **kwargs))

    async def send(self, **frame: Any) -> None:
        await self.conn.write_message(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.conn.write_message(data, binary=isinstance(data, bytes))

    async def recv(self, timeout: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.read_message(), timeout)
        if raw is None:
            raise Closed(self.conn.close_code, self.conn.close_reason)
        value: dict[str, Any] = json.loads(raw)
        return value

    async def recv_until(self, kind: str, timeout: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        """Skip frames until one of type ``kind``."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame

    async def closed(self, timeout: float = RECV_TIMEOUT_S) -> tuple[int | None, str | None]:
        """Read until the server closes; ``(code, reason)``."""
        while True:
            raw = await asyncio.wait_for(self.conn.read_message(), timeout)
            if raw is None:
                code, reason = self.conn.close_code, self.conn.close_reason
                self.close()  # tornado warns about a connection never closed on our side
                return code, reason

    def close(self) -> None:
        self.conn.close()
