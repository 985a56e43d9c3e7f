"""The async Python client (:class:`ChatClient`) and its command line (``python -m chat.client``)."""

from chat.client.client import ChatClient, ChatClosed, ChatError, ChatRefused, Disconnected, session_file

__all__ = ["ChatClient", "ChatClosed", "ChatError", "ChatRefused", "Disconnected", "session_file"]
