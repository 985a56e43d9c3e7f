"""What the client raises. Every error the server sends is a :class:`ChatError`."""

from __future__ import annotations


class ChatError(Exception):
    """The server answered a request with an ``error`` frame (or the client cannot go on)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class ChatRefused(ChatError):
    """The server refused this client for good: ``code`` is the close reason
    (``name_taken``, ``bad_name``, ``signed_out`` when its session or token
    ended, ``account_disabled``...), ``unauthorized`` for a handshake refused
    with HTTP 401 (a wrong or revoked token), or ``http_<status>``. The client
    does not reconnect; every pending and later call raises this, and so does
    the iterator.
    """

    def __init__(self, code: str, message: str, close_code: int | None = None) -> None:
        super().__init__(code, message)
        self.close_code = close_code


class ChatClosed(ChatError):
    """The client was closed with :meth:`ChatClient.close`."""

    def __init__(self) -> None:
        super().__init__("closed", "the client is closed")


class Disconnected(ConnectionError):
    """The connection failed or dropped. :meth:`ChatClient.connect` raises it when
    the first connection fails; afterwards the client reconnects by itself."""


def fresh(error: ChatError) -> ChatError:
    # A new exception per raise, so tracebacks don't pile up on one object.
    if isinstance(error, ChatRefused):
        return ChatRefused(error.code, error.message, error.close_code)
    if isinstance(error, ChatClosed):
        return ChatClosed()
    return ChatError(error.code, error.message)
