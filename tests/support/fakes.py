"""Fakes for the core's collaborators: clocks and a transport that keeps what it is sent."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from chat.core.frames import OutFrame
from chat.core.outbox import Flusher


class FakeClock:
    """Monotonic time that follows the real clock and can be pushed forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time at once: pass it as a
        service's ``sleep`` so a wait for the rate limit costs no real time."""
        self.advance(seconds)
        await asyncio.sleep(0)


class VirtualClock(FakeClock):
    """Time that moves only when pushed forward or slept on: waits for the
    rate limit are exact, however slow the machine."""

    def __call__(self) -> float:
        return self.offset


class FakeConn:
    """A transport that takes every write at once and keeps the frames.

    Every frame must be well formed (its wire bytes carry its text). Reading
    its frames first flushes the service's outboxes, as the end of the loop
    tick would: ``frames`` is all of them, ``of(kind)`` those of one type,
    ``take()`` those since the last ``take()``.
    """

    def __init__(self, flusher: Flusher) -> None:
        self._flusher = flusher
        self._frames: list[dict[str, Any]] = []
        self._read = 0
        self.closed: tuple[int, str] | None = None

    def write_frames(self, frames: list[OutFrame]) -> bool:
        for frame in frames:
            assert frame.data.endswith(frame.text.encode()), "a broken frame"
            self._frames.append(json.loads(frame.text))
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    @property
    def frames(self) -> list[dict[str, Any]]:
        self._flusher.flush()
        return self._frames

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    def take(self) -> list[dict[str, Any]]:
        """The frames received since the last call."""
        new = self.frames[self._read :]
        self._read = len(self._frames)
        return new


class RecordingSockets:
    """The sockets an :class:`chat.core.accounts.Accounts` would close, recorded
    (and, when ``forward`` is set, passed on: to the app's chat service)."""

    def __init__(self) -> None:
        self.ended: list[list[str]] = []
        self.disabled: list[int] = []
        self.created: list[str] = []
        self.forward: Any = None

    def end_sessions(self, keys: list[str]) -> None:
        self.ended.append(list(keys))
        if self.forward is not None:
            self.forward.end_sessions(keys)

    def account_disabled(self, account_id: int) -> None:
        self.disabled.append(account_id)
        if self.forward is not None:
            self.forward.account_disabled(account_id)

    def account_created(self, name: str) -> None:
        self.created.append(name)
        if self.forward is not None:
            self.forward.account_created(name)
