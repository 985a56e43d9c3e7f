"""Every code the server tells a client, and the errors that carry them, in one place.

- :class:`ErrorCode`: the ``code`` of an ``error`` frame, the ``error`` of an
  HTTP error body, and why a name is refused (``bad_name``, ``name_taken``,
  ``unavailable``: the reason of the close frame, or of a refused login).
- :class:`CloseCode` and :class:`CloseReason`: how and why else a socket is closed.
- :class:`ChatServiceError` is the base of every error the chat rules raise on
  purpose: :class:`Invalid` (a value breaks a rule), :class:`ProtocolError`
  (a frame the server refuses) and :class:`Refused` (a connection or login it
  will not admit). Back-end failures are
  :class:`chat.backends.base.StoreUnavailable`, apart: they are not the
  client's doing.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    NORMAL = 1000  # logged out
    GOING_AWAY = 1001  # server shutting down; clients reconnect
    UNSUPPORTED_DATA = 1003  # binary frames
    POLICY_VIOLATION = 1008  # bad name, name taken, sustained flood
    MESSAGE_TOO_BIG = 1009  # frame over --max-frame-bytes
    TRY_AGAIN_LATER = 1013  # slow consumer that stopped reading


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    BAD_REQUEST = "bad_request"
    BAD_ROOM = "bad_room"
    NOT_MEMBER = "not_member"
    EMPTY = "empty"
    TOO_LONG = "too_long"
    # No longer sent: a frame over the rate is read later, never dropped.
    # Kept so clients written for older servers still know it (they retry it).
    RATE_LIMITED = "rate_limited"
    TOO_MANY_ROOMS = "too_many_rooms"
    UNAVAILABLE = "unavailable"
    # A name refused: the close reason of a socket, or why a login failed.
    BAD_NAME = "bad_name"
    NAME_TAKEN = "name_taken"
    # Access control (chat.core.policy). not_found is also the answer for a
    # room the caller may not see: the two are never told apart.
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    UNAUTHORIZED = "unauthorized"
    ROOM_EXISTS = "room_exists"
    BAD_PASSWORD = "bad_password"
    THROTTLED = "throttled"


class CloseReason(StrEnum):
    """The reason of a close frame, when it is not a refused name (an :class:`ErrorCode`)."""

    FLOOD = "flood"
    LOGGED_OUT = "logged_out"
    SLOW_CONSUMER = "slow consumer"
    SHUTTING_DOWN = "server shutting down"
    BINARY = "binary frames are not supported"
    SIGNED_OUT = "signed_out"  # the session ended: signed out, password changed, or token revoked
    DISABLED = "account_disabled"


class ChatServiceError(Exception):
    """Base of every error the chat rules raise on purpose; ``message`` is for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(ChatServiceError, ValueError):
    """A name, room or text that breaks the rules; ``code`` is what the client is told."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ProtocolError(ChatServiceError):
    """A frame the server refuses. ``ref`` is the frame's ref, when it had a valid one."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.ref = ref


class Refused(ChatServiceError):
    """A connection or login the service will not admit; ``reason`` is the close reason."""

    def __init__(self, reason: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.reason = reason
