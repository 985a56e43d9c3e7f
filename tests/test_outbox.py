"""The outbox without sockets: coalescing, backpressure, gaps and stalls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chat.frames import EPHEMERAL, OutFrame
from chat.outbox import STALL_S, Flusher, Outbox


class SlowTransport:
    """Takes writes; ``busy`` makes them wait until ``finish()`` is called."""

    def __init__(self) -> None:
        self.writes: list[list[dict[str, Any]]] = []
        self.busy = False
        self.outbox: Outbox | None = None

    def write_frames(self, frames: list[OutFrame]) -> bool:
        self.writes.append([json.loads(f.text) for f in frames])
        return not self.busy

    def close(self, code: int, reason: str) -> None:
        raise AssertionError("not used")

    def finish(self) -> None:
        self.busy = False
        assert self.outbox is not None
        self.outbox.drained()


def message(seq: int, room: str = "lobby", size: int = 0) -> OutFrame:
    return OutFrame.message(json.dumps({"type": "message", "room": room, "seq": seq, "text": "x" * size}), room, seq)


def control(kind: str) -> OutFrame:
    return OutFrame.of(json.dumps({"type": kind}))


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def make(max_backlog: int = 1 << 20) -> tuple[Outbox, SlowTransport, Flusher, Clock, list[int]]:
    transport = SlowTransport()
    flusher = Flusher()
    clock = Clock()
    gaps: list[int] = []
    outbox = Outbox(transport, flusher, max_backlog, clock, lambda: gaps.append(1))
    transport.outbox = outbox
    return outbox, transport, flusher, clock, gaps


@pytest.mark.gen_test
async def test_frames_queued_in_one_tick_go_out_in_one_write():
    outbox, transport, flusher, _, _ = make()
    for seq in (1, 2, 3):
        outbox.push(message(seq))
    assert transport.writes == []  # nothing before the end of the tick
    flusher.flush()
    assert [[f["seq"] for f in w] for w in transport.writes] == [[1, 2, 3]]


@pytest.mark.gen_test
async def test_the_flusher_runs_by_itself_at_the_end_of_the_tick():
    outbox, transport, _, _, _ = make()
    outbox.push(control("pong"))
    await _next_tick()
    assert transport.writes == [[{"type": "pong"}]]


async def _next_tick() -> None:
    import asyncio

    # The flusher was scheduled with call_soon before this: one yield runs it.
    await asyncio.sleep(0)


@pytest.mark.gen_test
async def test_while_a_write_is_in_flight_frames_wait_in_the_outbox():
    outbox, transport, flusher, _, _ = make()
    transport.busy = True
    outbox.push(message(1))
    flusher.flush()
    outbox.push(message(2))
    outbox.push(message(3))
    flusher.flush()
    assert len(transport.writes) == 1
    assert outbox.queued_bytes > 0
    transport.finish()
    flusher.flush()
    assert [[f["seq"] for f in w] for w in transport.writes] == [[1], [2, 3]]
    assert outbox.queued_bytes == 0


@pytest.mark.gen_test
async def test_overflow_drops_queued_messages_for_a_gap_and_keeps_control_frames():
    outbox, transport, flusher, _, gaps = make(max_backlog=2_000)
    transport.busy = True
    outbox.push(message(1))
    flusher.flush()  # seq 1 is in flight: it cannot be taken back
    outbox.push(control("presence"))
    outbox.push(OutFrame.of(json.dumps({"type": "typing"}), EPHEMERAL))
    for seq in range(2, 12):
        outbox.push(message(seq, size=300))
        outbox.push(message(seq, room="dev", size=300))
    assert outbox.queued_bytes <= 2_000
    transport.finish()
    flusher.flush()
    sent = [f for w in transport.writes[1:] for f in w]
    kinds = [f["type"] for f in sent]
    assert "presence" in kinds
    assert "typing" not in kinds
    gap_frames = [f for f in sent if f["type"] == "gap"]
    assert gaps
    # Every seq of each room is either delivered or inside a gap, in order.
    for room in ("lobby", "dev"):
        delivered = [f["seq"] for f in sent if f["type"] == "message" and f["room"] == room]
        covered = [
            s for g in gap_frames if g["room"] == room for s in range(g["from_seq"], g["to_seq"] + 1)
        ]
        assert sorted(delivered + covered) == list(range(2, 12))  # lobby's seq 1 went out first
        assert not set(delivered) & set(covered)


@pytest.mark.gen_test
async def test_repeated_overflows_merge_into_one_gap_per_room():
    outbox, transport, flusher, _, _ = make(max_backlog=1_000)
    transport.busy = True
    outbox.push(control("welcome"))
    flusher.flush()
    for seq in range(1, 40):
        outbox.push(message(seq, size=200))
    transport.finish()
    flusher.flush()
    sent = [f for w in transport.writes[1:] for f in w]
    gap_frames = [f for f in sent if f["type"] == "gap"]
    assert len(gap_frames) == 1
    delivered = [f["seq"] for f in sent if f["type"] == "message"]
    assert gap_frames[0]["from_seq"] == 1
    assert delivered == list(range(gap_frames[0]["to_seq"] + 1, 40))


@pytest.mark.gen_test
async def test_a_member_is_stalled_when_a_write_stays_in_flight():
    outbox, transport, flusher, clock, _ = make()
    transport.busy = True
    outbox.push(control("pong"))
    flusher.flush()
    clock.now = STALL_S - 1
    assert not outbox.stalled(clock.now)
    clock.now = STALL_S
    assert outbox.stalled(clock.now)
    transport.finish()
    assert not outbox.stalled(clock.now)


@pytest.mark.gen_test
async def test_a_closed_outbox_queues_nothing():
    outbox, transport, flusher, _, _ = make()
    outbox.close()
    outbox.push(control("pong"))
    flusher.flush()
    assert transport.writes == []


def test_control_frames_alone_never_trigger_a_gap():
    outbox, transport, _, _, gaps = make(max_backlog=10)
    transport.busy = True
    outbox._dirty = True  # no loop here: keep the flusher out of it
    for _ in range(5):
        outbox.push(control("presence"))
    assert gaps == []
    assert outbox.queued_bytes > 10


@pytest.mark.gen_test
async def test_a_member_keeping_up_gets_even_a_message_bigger_than_the_backlog():
    outbox, transport, flusher, _, gaps = make(max_backlog=1_000)
    outbox.push(message(1, size=5_000))
    flusher.flush()
    assert gaps == []
    assert [f["seq"] for f in transport.writes[0]] == [1]
