"""Server-to-client WebSocket frames, built once and written to many sockets.

RFC 6455 section 5.2: a server's frames are not masked, so the bytes of a text
frame are the same for every recipient. Building them once per message, rather
than once per member, is most of what makes fan-out cheap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_FIN_TEXT = 0x81  # FIN bit set, opcode 1 (text)


def text_frame(payload: bytes) -> bytes:
    """One complete, unfragmented, unmasked text frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", _FIN_TEXT, n)
    elif n <= 0xFFFF:
        header = struct.pack("!BBH", _FIN_TEXT, 126, n)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, n)
    return header + payload


# What a queued frame is, for the slow-consumer policy (see chat/core/outbox.py).
CONTROL = 0  # replies, presence, acknowledgements: never dropped
MESSAGE = 1  # a room message: dropped on overflow, replaced by a gap
EPHEMERAL = 2  # typing: dropped on overflow, nothing replaces it
GAP = 3  # a gap notice: merged with the next overflow of its room


@dataclass(frozen=True, slots=True)
class OutFrame:
    """A server frame: its JSON text, the wire bytes of the text frame carrying
    it, and what it is. One OutFrame is shared by every member it goes to, so
    queueing it costs no allocation per member."""

    text: str
    data: bytes
    kind: int = CONTROL
    room: str = ""
    first: int = 0  # MESSAGE: its seq; GAP: the range
    last: int = 0

    @classmethod
    def of(cls, text: str, kind: int = CONTROL, room: str = "", first: int = 0, last: int = 0) -> OutFrame:
        return cls(text, text_frame(text.encode()), kind, room, first, last)

    @classmethod
    def message(cls, text: str, room: str, seq: int) -> OutFrame:
        return cls.of(text, MESSAGE, room, seq, seq)
