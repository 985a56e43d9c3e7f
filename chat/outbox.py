"""Per-connection send queues: coalesced writes and the slow-consumer policy.

Pure and tornado-free: an :class:`Outbox` hands frames to a :class:`Transport`
and learns from it when the socket has drained.

- Frames queued for a member during one event-loop tick go out in one write
  (the :class:`Flusher` flushes every dirty outbox once at the end of the tick).
- While a write is still in flight (the peer is not reading fast enough), new
  frames wait in the outbox, where they can still be dropped, rather than in the
  socket's buffer, where they could not.
- Past ``max_backlog`` bytes, the member's queued room messages are dropped and
  replaced by one ``gap`` frame per room naming the seq range, which the client
  fetches with ``history``. Memory per member is bounded, and the room is never
  held back by its slowest member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from chat.frames import CONTROL, GAP, MESSAGE, OutFrame
from chat.protocol import encode

# A member whose socket has accepted nothing for this long has stopped reading
# (or vanished without a FIN): it is closed with 1013 so it can reconnect and
# resume, rather than pin its backlog forever.
STALL_S = 30.0


class Transport(Protocol):
    def write_frames(self, frames: list[OutFrame]) -> bool:
        """Write ``frames`` in order. True if the socket took them all at once;
        False if part waits in the socket's buffer, in which case the transport
        calls :meth:`Outbox.drained` once it is written."""
        ...

    def close(self, code: int, reason: str) -> None: ...


class Flusher:
    """Flushes dirty outboxes once per event-loop tick."""

    def __init__(self) -> None:
        self._dirty: list[Outbox] = []
        self._scheduled = False

    def mark(self, outbox: Outbox) -> None:
        self._dirty.append(outbox)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for outbox in dirty:
            outbox.flush()


class Outbox:
    # Slots: push() runs once per member per message, and slot access is the
    # cheapest attribute access CPython has.
    __slots__ = (
        "_clock",
        "_dirty",
        "_flusher",
        "_max_backlog",
        "_on_gap",
        "_queue",
        "_queued",
        "_writing_since",
        "closed",
        "transport",
    )

    def __init__(
        self,
        transport: Transport,
        flusher: Flusher,
        max_backlog: int,
        clock: Callable[[], float],
        on_gap: Callable[[], None] = lambda: None,
    ) -> None:
        self.transport = transport
        self._flusher = flusher
        self._max_backlog = max_backlog
        self._clock = clock
        self._on_gap = on_gap
        self._queue: list[OutFrame] = []
        self._queued = 0  # bytes in _queue
        self._dirty = False
        self._writing_since: float | None = None  # a write is in flight since then
        self.closed = False

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def push(self, frame: OutFrame) -> None:
        """Queue one frame; it goes out at the end of this loop tick at the latest.

        The fan-out calls this once per member per message: it allocates
        nothing (the frame is shared) and does no I/O.
        """
        if self.closed:
            return
        self._queue.append(frame)
        self._queued += len(frame.data)
        # Only a member with a write still in flight is slow: without one, the
        # queue is a single tick's frames and goes out at the end of the tick.
        if self._queued > self._max_backlog and self._writing_since is not None and frame.kind != CONTROL:
            self._overflow()
        if not self._dirty:
            self._dirty = True
            self._flusher.mark(self)

    def flush(self) -> None:
        self._dirty = False
        if self._writing_since is not None or not self._queue or self.closed:
            return
        frames, self._queue = self._queue, []
        self._queued = 0
        if not self.transport.write_frames(frames):
            self._writing_since = self._clock()

    def drained(self) -> None:
        """The transport wrote everything it was given."""
        self._writing_since = None
        if self._queue and not self._dirty:
            self._dirty = True
            self._flusher.mark(self)

    def stalled_for(self, now: float) -> float:
        """Seconds the last write has waited for the socket to drain (0 when none waits)."""
        return 0.0 if self._writing_since is None else now - self._writing_since

    def stalled(self, now: float) -> bool:
        return self._writing_since is not None and now - self._writing_since >= STALL_S

    def close(self) -> None:
        self.closed = True
        self._queue = []
        self._queued = 0

    def _overflow(self) -> None:
        """Drop queued room messages and typing; leave one gap per room instead."""
        ranges: dict[str, list[int]] = {}
        kept: list[OutFrame] = []
        for frame in self._queue:
            if frame.kind in (MESSAGE, GAP):
                span = ranges.setdefault(frame.room, [frame.first, frame.last])
                span[0] = min(span[0], frame.first)
                span[1] = max(span[1], frame.last)
            elif frame.kind == CONTROL:
                kept.append(frame)
        for room, (first, last) in ranges.items():
            text = encode({"type": "gap", "room": room, "from_seq": first, "to_seq": last})
            kept.append(OutFrame.of(text, GAP, room, first, last))
            self._on_gap()
        self._queue = kept
        self._queued = sum(len(frame.data) for frame in kept)
