"""The client's socket: dial, read the welcome, serve frames, and reconnect when it drops.

:class:`Transport` keeps one WebSocket open at a time. It knows nothing of
requests or rooms: it hands every frame it reads to its :class:`Link` (the
:class:`chat.client.ChatClient`), writes the frames the link gives it, and
tells the link when a connection is welcomed, when it drops, and when the
client is done for good.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import tornado.httpclient
import tornado.websocket

from chat.client.errors import ChatError, ChatRefused, Disconnected

# Named for the package, not this module: it is what users configure.
log = logging.getLogger("chat.client")

Frame = dict[str, Any]
Socket = tornado.websocket.WebSocketClientConnection
Dial = Callable[[tornado.httpclient.HTTPRequest], Awaitable[Socket]]

# Close codes that mean "this client is refused", not "try again": a name that is
# taken or bad (1008), frames the server cannot take (1003, 1009) or a protocol
# fault (1002, 1007, 1010). Reconnecting would only be refused the same way.
FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
# Close reasons that end the client whatever the close code: its session
# ended (signed out, password changed, token revoked; sent with 1000) or its
# account was disabled. Reconnecting would be refused (HTTP 401) or, for a
# signed-out page session, come back as someone else.
TERMINAL_CLOSE_REASONS = frozenset({"signed_out", "account_disabled"})
# A connection that stayed up this long was healthy: the backoff starts over.
# A server that accepts and drops at once (crash loop, proxy) is not hammered.
STABLE_AFTER_S = 5.0
# How long close() waits for the server to answer the closing handshake.
CLOSE_TIMEOUT_S = 5.0


def ws_url(url: str) -> str:
    """Accept http(s):// and a bare host too: ``http://host:8888`` means ``ws://host:8888/ws``."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a ws://, wss://, http:// or https:// URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit(parts._replace(scheme=scheme, path=path))


def decode(raw: str | bytes) -> Frame | None:
    """A frame as a dict, or None when it is not a JSON object."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def close_error(code: int | None, reason: str | None) -> ChatRefused | None:
    """The refusal a close code (or reason) means, or None when reconnecting may help."""
    reason = reason or ""
    if code not in FATAL_CLOSE_CODES and reason not in TERMINAL_CLOSE_REASONS:
        return None
    return ChatRefused(reason or f"closed_{code}", f"the server closed the connection: {code} {reason}", code)


def refusal_message(exc: tornado.httpclient.HTTPClientError) -> str:
    """The ``message`` of the server's JSON error body, if it sent one."""
    body = exc.response.body if exc.response is not None else b""
    value = decode(body) if body else None
    message = value.get("message") if value is not None else None
    return message if isinstance(message, str) else ""


@dataclass(frozen=True, slots=True)
class Link:
    """What the transport tells the client, and asks of it."""

    # A connection was welcomed (the frame): rejoin, resend.
    attached: Callable[[Frame], None]
    # A frame arrived; raises KeyError, TypeError or ValueError for a malformed one.
    received: Callable[[Frame], None]
    # The connection dropped: forget what belonged to it.
    detached: Callable[[], None]
    # Refused for good, or stopped by a bug: fail what waits.
    finished: Callable[[ChatError], None]
    # The next frame to write (waits until there is one).
    outgoing: Callable[[], Awaitable[str]]


class Transport:
    """One WebSocket at a time, reconnected with exponential backoff and full jitter."""

    def __init__(
        self,
        url: str,
        name: str | None,
        link: Link,
        dial: Dial,
        *,
        session: str | None,
        token: str | None,
        backoff_base: float,
        backoff_cap: float,
        connect_timeout: float,
        rng: random.Random,
        cafile: str | None,
    ) -> None:
        self._base_url = ws_url(url)
        self._requested_name = name
        self.name = name or ""
        self.session = session
        self._token = token
        self._link = link
        self._dial = dial
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._connect_timeout = connect_timeout
        self._rng = rng
        self._ssl: ssl.SSLContext | None = None
        if cafile is not None:
            self._ssl = ssl.create_default_context()
            self._ssl.load_verify_locations(cafile)
        self.conn: Socket | None = None
        self.runner: asyncio.Task[None] | None = None
        self.closing = False

    async def start(self) -> None:
        """Open the first connection (raises what :meth:`_open` raises), then keep one open."""
        conn, welcome = await self._open()
        self._attach(conn, welcome)
        self.runner = asyncio.create_task(self._run(conn))

    async def close(self) -> None:
        """Close the socket (the closing handshake, up to CLOSE_TIMEOUT_S) and stop reconnecting."""
        if not self.closing:
            self.closing = True
            if self.conn is not None:
                self.conn.close(1000, "client closing")
            elif self.runner is not None:
                self.runner.cancel()  # sleeping before a reconnect, or dialling
        if self.runner is not None and not self.runner.done():
            done, _ = await asyncio.wait([self.runner], timeout=CLOSE_TIMEOUT_S)
            if not done:
                self.runner.cancel()
                await asyncio.wait([self.runner])

    def _connect_url(self) -> str:
        parts = urlsplit(self._base_url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("name", "session")]
        # With a token the account is the identity: its name comes in the welcome.
        if self._token is None and self._requested_name is not None:
            query.append(("name", self._requested_name))
            if self.session:
                query.append(("session", self.session))
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _open(self) -> tuple[Socket, Frame]:
        """Dial and read the welcome. Raises :class:`ChatRefused` for a refusal
        that retrying cannot fix, ``OSError``/:class:`Disconnected` otherwise."""
        # Presented on every dial, reconnects included: the server keeps no
        # state for a token between sockets.
        headers = {"Authorization": f"Bearer {self._token}"} if self._token is not None else None
        request = tornado.httpclient.HTTPRequest(
            self._connect_url(),
            headers=headers,
            connect_timeout=self._connect_timeout,
            request_timeout=self._connect_timeout,
            ssl_options=self._ssl,
        )
        try:
            conn = await self._dial(request)
        except tornado.httpclient.HTTPClientError as exc:
            if exc.code == 401:
                # A wrong or revoked token, or a disabled account: the same
                # credentials will be refused the same way on every retry.
                said = refusal_message(exc) or "a wrong or revoked token?"
                raise ChatRefused("unauthorized", f"the server refused the credentials (HTTP 401): {said}") from exc
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
                error = close_error(conn.close_code, conn.close_reason)
                if error is not None:
                    raise error
                raise Disconnected(f"closed before the welcome: {conn.close_code} {conn.close_reason or ''}")
            welcome = decode(raw)
            if welcome is None or welcome.get("type") != "welcome":
                raise Disconnected(f"expected a welcome frame, got {raw[:200]!r}")
            welcomed = True
            return conn, welcome
        finally:
            if not welcomed:
                conn.close()

    def _attach(self, conn: Socket, welcome: Frame) -> None:
        self.conn = conn
        session, name = welcome.get("session"), welcome.get("name")
        # An account's welcome carries "" (a token or page session is not resumed by a session id).
        if isinstance(session, str) and session:
            self.session = session
        if isinstance(name, str):
            self.name = name
        self._link.attached(welcome)

    def _backoff(self, attempt: int) -> float:
        # Full jitter: clients dropped together by a restart come back spread out.
        return self._rng.uniform(0, min(self._backoff_cap, self._backoff_base * 2 ** min(attempt, 30)))

    async def _run(self, conn: Socket) -> None:
        """Serve the connection; when it drops, reconnect until closed or refused."""
        loop = asyncio.get_running_loop()
        attempt = 0
        try:
            while True:
                opened_at = loop.time()
                code, reason = await self._serve(conn)
                self.conn = None
                self._link.detached()
                if self.closing:
                    return
                fatal = close_error(code, reason)
                if fatal is not None:
                    log.warning("chat server refused %s: %s", self.name, fatal.message)
                    self._link.finished(fatal)
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
                        log.warning("chat server refused %s: %s", self.name, exc.message)
                        self._link.finished(exc)
                        return
                    except OSError as exc:  # Disconnected, refused, reset, Tornado's StreamClosedError
                        log.info("reconnect attempt %d failed: %s", attempt, exc)
                        continue
                    break
                self._attach(conn, welcome)
        except Exception as exc:
            # A bug here must not leave callers waiting forever.
            log.exception("chat client stopped")
            self._link.finished(ChatError("internal", f"the client stopped: {exc!r}"))

    async def _serve(self, conn: Socket) -> tuple[int | None, str | None]:
        """Read frames until the socket closes; returns the close code and reason."""
        pump = asyncio.create_task(self._pump(conn))
        try:
            while True:
                raw = await conn.read_message()
                if raw is None:
                    return conn.close_code, conn.close_reason
                frame = decode(raw)
                if frame is None:
                    log.warning("ignoring a frame that is not a JSON object: %.200r", raw)
                    continue
                try:
                    self._link.received(frame)
                except (KeyError, TypeError, ValueError):
                    log.warning("ignoring a malformed frame: %.200r", raw, exc_info=True)
        finally:
            pump.cancel()
            await asyncio.wait([pump])
            # Also after the server closed: Tornado warns about connections never closed.
            conn.close()

    async def _pump(self, conn: Socket) -> None:
        """Write the link's frames in order, one connection's worth."""
        try:
            while True:
                await conn.write_message(await self._link.outgoing())
        except tornado.websocket.WebSocketClosedError:
            return  # the read loop sees the close and reconnects
        except Exception:
            log.exception("sending failed; reconnecting")
            conn.close(1011, "client error")
