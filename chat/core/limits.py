"""Every limit the chat rules enforce, defined once.

The server's options (:class:`chat.server.options.Settings`) take their
defaults from here, and :class:`Limits` carries the values in force to the
service. Clients may import the page size too: the core imports no server code.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat.core.ratelimit import FLOOD_WINDOW_S

# Messages sent with ``joined`` on a fresh join: a screenful, the rest on scroll.
HISTORY_ON_JOIN = 50
# A ``history`` request without a ``limit`` gets this many messages.
HISTORY_PAGE_DEFAULT = 50
# ... and never more than this many, whatever it asks: bounds one reply's size.
HISTORY_PAGE_MAX = 200
# Longest message text, in characters: a long paste, not a file.
MAX_MESSAGE_CHARS = 4000
# Frames per second per connection, and the bucket's depth as a multiple of it:
# room for a paste of lines or a reconnect's rejoins.
RATE = 20.0
BURST_PER_RATE = 2.0
# Rooms one connection may be in: far more than a person reads at once.
MAX_ROOMS_PER_CONNECTION = 100
# A member's queued frames past this many bytes are dropped for a gap
# notice: about a thousand typical messages, and bounded memory per socket.
MAX_BACKLOG_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits one service enforces (the server fills them from its options)."""

    history_on_join: int = HISTORY_ON_JOIN
    max_message_chars: int = MAX_MESSAGE_CHARS
    rate: float = RATE
    burst: float = RATE * BURST_PER_RATE
    # Seconds behind the rate without a break before a connection is closed as a flood.
    flood_window: float = FLOOD_WINDOW_S
    max_rooms_per_connection: int = MAX_ROOMS_PER_CONNECTION
    max_backlog_bytes: int = MAX_BACKLOG_BYTES
