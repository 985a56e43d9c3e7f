"""The async Python client (:class:`ChatClient`) and its command line (``python -m chat.client``).

- ``client``: :class:`ChatClient`, the facade: the calls, iteration, and the wiring below.
- ``account``: what an account does besides chatting (create, dm, moderation, members)
  and what the welcome says of it.
- ``changes``: edit, delete, react, mark_read and search.
- ``transport``: the socket: dial, welcome, reconnect with backoff.
- ``pending``: request correlation: pending requests by ref, retries, each room's order, pacing.
- ``rooms``: the joined rooms: a cursor each, and the history fetches that fill their holes.
- ``cursor``: where a reader stands in one room (pure: accept, hold, fill a gap).
- ``errors``: what it raises.
- ``cli`` and ``sessions``: the command line and its kept guest session tokens.
"""

from chat.client.client import ChatClient
from chat.client.errors import ChatClosed, ChatError, ChatRefused, Disconnected
from chat.client.sessions import session_file

__all__ = ["ChatClient", "ChatClosed", "ChatError", "ChatRefused", "Disconnected", "session_file"]
