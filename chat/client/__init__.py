"""The async Python client (:class:`ChatClient`) and its command line (``python -m chat.client``).

- ``client``: :class:`ChatClient`, the facade: requests, iteration, rooms.
- ``cursor``: where the client stands in each room (pure: accept, hold, fill a gap).
- ``errors``: what it raises.
- ``cli`` and ``sessions``: the command line and its kept session tokens.
"""

from chat.client.client import ChatClient
from chat.client.errors import ChatClosed, ChatError, ChatRefused, Disconnected
from chat.client.sessions import session_file

__all__ = ["ChatClient", "ChatClosed", "ChatError", "ChatRefused", "Disconnected", "session_file"]
