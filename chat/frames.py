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


@dataclass(frozen=True, slots=True)
class OutFrame:
    """A server frame: its JSON text, and the wire bytes of the text frame carrying it."""

    text: str
    data: bytes

    @classmethod
    def of(cls, text: str) -> OutFrame:
        return cls(text, text_frame(text.encode()))

    @property
    def size(self) -> int:
        return len(self.data)
