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
- A transport may also offer its socket's raw ``send`` (:meth:`Outbox.attach`).
  While nothing waits anywhere for that member (no frame queued, no write in
  flight, nothing of the transport's own held back), :attr:`Outbox.send` is that
  callable, and the fan-out writes a room message straight to the socket with
  it: the same bytes, in the same order, as a push and a flush would have
  written at the end of the tick, without the queue. Otherwise it is None, and
  the fan-out pushes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from chat.core.frames import CONTROL, GAP, MESSAGE, OutFrame
from chat.core.outbound import Gap
from chat.core.protocol import encode

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


# A socket's send(): takes bytes, returns how many the kernel took; raises
# BlockingIOError when it took none, OSError when the socket is gone.
RawSend = Callable[[bytes], int]
# Writes bytes after everything the transport still holds: True if they went out
# at once; False if part waits, in which case the transport calls Outbox.drained.
WriteRest = Callable[[bytes], bool]


class Flusher:
    """Flushes dirty outboxes once per event-loop tick."""

    def __init__(self) -> None:
        self._dirty: list[Outbox] = []
        self._scheduled = False
        self._direct: set[str] = set()  # rooms written straight to the sockets this tick

    def mark(self, outbox: Outbox) -> None:
        self._dirty.append(outbox)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def claim_direct(self, room: str) -> bool:
        """May ``room``'s next fan-out write straight to the sockets? Once per tick.

        The first fan-out of a tick is written at once, one send() per member.
        Later ones in the same tick are queued instead, so that a burst still
        goes out as one write per member at the end of the tick rather than as
        one write per message.
        """
        if room in self._direct:
            return False
        self._direct.add(room)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)
        return True

    def flush(self) -> None:
        self._scheduled = False
        self._direct.clear()
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
        "_held",
        "_max_backlog",
        "_on_gap",
        "_queue",
        "_queued",
        "_raw",
        "_rest",
        "_writing_since",
        "closed",
        "send",
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
        self._raw: RawSend | None = None  # the socket's send, when the transport offers it
        self._rest: WriteRest | None = None
        self._held = 0  # the transport's own writes waiting in its buffer
        # The raw send while a frame may go straight to the socket, else None.
        # Read once per member per message by the fan-out: a slot, kept up to
        # date here rather than worked out there.
        self.send: RawSend | None = None

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
        self.send = None  # what is queued goes first
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
        if self.transport.write_frames(frames):
            self._ready()
        else:
            self._writing_since = self._clock()

    def drained(self) -> None:
        """The transport wrote everything it was given."""
        self._writing_since = None
        if self._queue:
            if not self._dirty:
                self._dirty = True
                self._flusher.mark(self)
        else:
            self._ready()

    # -- the direct path --------------------------------------------------------

    def attach(self, raw: RawSend, rest: WriteRest) -> None:
        """The transport offers direct writes: ``raw`` is its socket's send,
        ``rest`` writes what a short send left over, behind anything it holds."""
        self._raw = raw
        self._rest = rest
        self._ready()

    def detach(self) -> None:
        """No more direct writes (the transport is closing)."""
        self._raw = self._rest = self.send = None

    def hold(self) -> None:
        """The transport has bytes of its own waiting to be written: no direct
        write may overtake them. Each hold is ended by one :meth:`release`."""
        self._held += 1
        self.send = None

    def release(self) -> None:
        self._held -= 1
        self._ready()

    def sent_part(self, data: bytes, sent: int) -> None:
        """A direct write of ``data`` took only its first ``sent`` bytes (0 when
        the socket would block): the rest goes through the transport's buffer,
        and the member has a write in flight until it is written."""
        self.send = None
        if self._rest is None:  # detached meanwhile: the socket is closing
            return
        if self._rest(data[sent:]):
            self._ready()
        else:
            self._writing_since = self._clock()

    def _ready(self) -> None:
        """Offer the direct path again if nothing waits for this member."""
        if self._raw is not None and not self._queue and self._writing_since is None and not self._held:
            self.send = None if self.closed else self._raw

    def stalled_for(self, now: float) -> float:
        """Seconds the last write has waited for the socket to drain (0 when none waits)."""
        return 0.0 if self._writing_since is None else now - self._writing_since

    def stalled(self, now: float) -> bool:
        return self._writing_since is not None and now - self._writing_since >= STALL_S

    def close(self) -> None:
        self.closed = True
        self._queue = []
        self._queued = 0
        self.detach()

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
            text = encode(Gap(room, first, last).to_wire())
            kept.append(OutFrame.of(text, GAP, room, first, last))
            self._on_gap()
        self._queue = kept
        self._queued = sum(len(frame.data) for frame in kept)
