"""What a load-test member puts on the wire and reads back: its message texts,
where it connects, and the names its failures are counted under.

A message's text is ``"<run> <id> <intended_ns> <sent_ns> <padding>"`` (see
:mod:`chat.loadtest.client`). A refused request raises the client's
:class:`chat.client.ChatError`, the one exception for an ``error`` answer.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from websockets.exceptions import InvalidHandshake, InvalidStatus

from chat.client.errors import ChatError
from chat.loadtest.connection import HandshakeFailed


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True, slots=True)
class ResumeOutcome:
    resumed: bool
    resync_ms: float | None


class ClosedByServer(Exception):
    """The socket closed while a frame was awaited."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason


# Errors a connect, a join or a resume can end with; each is counted, none ends the run.
CONNECT_ERRORS = (OSError, InvalidHandshake, HandshakeFailed, ClosedByServer, TimeoutError, ChatError, ValueError)


def parse_text(text: str, run: str) -> tuple[int, int, int] | None:
    """``(id, intended_ns, sent_ns)`` of a message text of run ``run``; None for anyone else's."""
    try:
        tag, mid, intended, sent, _ = text.split(" ", 4)
        if tag != run:
            return None
        return int(mid), int(intended), int(sent)
    except ValueError:
        return None


def message_text(run: str, mid: int, intended_ns: int, sent_ns: int, size: int) -> str:
    head = f"{run} {mid} {intended_ns} {sent_ns} "
    return head + "x" * max(size - len(head), 1)


def close_label(code: int, reason: str) -> str:
    return f"closed: {code} {reason}".rstrip()


def describe(exc: BaseException) -> str:
    """A short, countable name for why a connect or request failed."""
    if isinstance(exc, InvalidStatus):
        return f"http {exc.response.status_code}"
    if isinstance(exc, ClosedByServer):
        return close_label(exc.code, exc.reason)
    if isinstance(exc, ChatError):
        return f"error {exc.code}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__} errno {exc.errno}"
    return type(exc).__name__
