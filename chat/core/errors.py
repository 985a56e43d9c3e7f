"""The errors of the chat rules, under one base class.

Each carries what the other side is told: ``code`` for an error frame (an
:class:`chat.core.protocol.ErrorCode`), ``reason`` for a close frame or a
refused login.
"""

from __future__ import annotations


class ChatServiceError(Exception):
    """Base of every error the chat rules raise on purpose."""


class Refused(ChatServiceError):
    """A connection or login the service will not admit; ``reason`` is the close reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
