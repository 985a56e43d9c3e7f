"""The outbox without sockets: coalescing, backpressure, gaps and stalls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chat.core.frames import EPHEMERAL, OutFrame
from chat.core.outbox import STALL_S, Flusher, Outbox
from chat.core.ratelimit import FrameLimiter
from chat.core.service import Peer, fan_out


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
        covered = [s for g in gap_frames if g["room"] == room for s in range(g["from_seq"], g["to_seq"] + 1)]
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


# -- the direct path ------------------------------------------------------------


class Socket:
    """A socket's send(): takes at most ``room`` bytes per call (all when None)."""

    def __init__(self) -> None:
        self.data = b""
        self.room: int | None = None

    def send(self, data: bytes) -> int:
        took = len(data) if self.room is None else min(self.room, len(data))
        if took == 0:
            raise BlockingIOError
        self.data += data[:took]
        return took


def direct() -> tuple[Outbox, SlowTransport, Flusher, Socket, list[bytes]]:
    """An outbox whose transport offers direct writes; ``rest`` keeps what a short send left."""
    outbox, transport, flusher, _, _ = make()
    sock = Socket()
    rest: list[bytes] = []

    def write_rest(data: bytes) -> bool:
        rest.append(data)
        return not transport.busy

    outbox.attach(sock.send, write_rest)
    return outbox, transport, flusher, sock, rest


@pytest.mark.gen_test
async def test_the_direct_path_is_offered_only_while_nothing_waits_for_the_member():
    outbox, transport, flusher, sock, _ = direct()
    assert outbox.send == sock.send
    outbox.push(message(1))  # a queued frame goes first
    assert outbox.send is None
    transport.busy = True
    flusher.flush()  # ... and then a write in flight
    assert outbox.send is None
    transport.finish()
    assert outbox.send == sock.send


@pytest.mark.gen_test
async def test_a_hold_of_the_transport_keeps_the_direct_path_closed_until_every_release():
    outbox, _, _, sock, _ = direct()
    outbox.hold()
    outbox.hold()
    assert outbox.send is None
    outbox.release()
    assert outbox.send is None
    outbox.release()
    assert outbox.send == sock.send


@pytest.mark.gen_test
async def test_detach_and_close_end_the_direct_path_for_good():
    outbox, transport, flusher, _, _ = direct()
    outbox.detach()
    outbox.push(message(1))
    flusher.flush()
    assert [[f["seq"] for f in w] for w in transport.writes] == [[1]]
    assert outbox.send is None  # written, and still not offered again
    closed, _, _, _, _ = direct()
    closed.close()
    closed.drained()
    assert closed.send is None


@pytest.mark.gen_test
async def test_a_short_direct_send_puts_the_rest_in_flight_and_later_frames_wait_behind_it():
    outbox, transport, flusher, sock, rest = direct()
    data = message(1).data
    transport.busy = True  # the rest cannot be written at once either
    outbox.sent_part(data, 10)
    assert rest == [data[10:]]
    assert outbox.send is None
    outbox.push(message(2))
    flusher.flush()
    assert transport.writes == []  # seq 2 waits until the rest is written
    transport.finish()
    flusher.flush()
    assert [[f["seq"] for f in w] for w in transport.writes] == [[2]]
    assert outbox.send == sock.send


@pytest.mark.gen_test
async def test_a_short_direct_send_whose_rest_goes_out_at_once_leaves_the_path_open():
    outbox, _, _, sock, rest = direct()
    outbox.sent_part(message(1).data, 0)
    assert rest == [message(1).data]
    assert outbox.send == sock.send


# -- fan_out: the room's hot loop over those outboxes ------------------------------


class Member:
    """A room member for fan_out: a peer whose outbox writes to ``sock`` directly when it may."""

    def __init__(self, flusher: Flusher, name: str) -> None:
        self.transport = SlowTransport()
        self.sock = Socket()
        self.rest: list[bytes] = []

        def write_rest(data: bytes) -> bool:
            self.rest.append(data)
            return not self.transport.busy

        outbox = Outbox(self.transport, flusher, 1 << 20, Clock())
        self.transport.outbox = outbox
        outbox.attach(self.sock.send, write_rest)
        self.peer = Peer(self.transport, outbox, name, name, FrameLimiter(0, 0))

    def received(self) -> list[Any]:
        """Everything this member got, in order: straight from the socket, then through the outbox."""
        return [f.get("seq", f["type"]) for f in _parse(self.sock.data)] + [
            f.get("seq", f["type"]) for w in self.transport.writes for f in w
        ]


def _parse(data: bytes) -> list[dict[str, Any]]:
    frames = []
    while data:
        assert data[0] == 0x81  # text, FIN
        assert data[1] < 126  # the small frames of these tests
        frames.append(json.loads(data[2 : 2 + data[1]]))
        data = data[2 + data[1] :]
    return frames


def room(n: int) -> tuple[Flusher, list[Member]]:
    flusher = Flusher()
    return flusher, [Member(flusher, f"m{i}") for i in range(n)]


@pytest.mark.gen_test
async def test_fan_out_writes_straight_to_idle_members_and_queues_behind_waiting_frames():
    flusher, members = room(3)
    members[1].peer.outbox.push(control("presence"))  # queued earlier in this tick
    fan_out([m.peer for m in members], [message(1)], {}, flusher.claim_direct("lobby"))
    assert _parse(members[0].sock.data) == [json.loads(message(1).text)]
    assert members[1].sock.data == b""  # it has a frame waiting: seq 1 goes behind it
    flusher.flush()
    assert [m.received() for m in members] == [[1], ["presence", 1], [1]]
    assert [m.transport.writes for m in (members[0], members[2])] == [[], []]


@pytest.mark.gen_test
async def test_fan_out_gives_each_sender_its_own_frames_in_the_room_order():
    flusher, members = room(2)
    frames = [message(1), message(2), message(3)]
    mine = [frames[0], OutFrame.of(json.dumps({"type": "message", "seq": 2, "ref": "r"})), frames[2]]
    fan_out([m.peer for m in members], frames, {members[1].peer: mine}, flusher.claim_direct("lobby"))
    flusher.flush()
    assert members[0].received() == [1, 2, 3]
    assert members[0].transport.writes == []  # one send() for the three
    assert [f.get("ref") for w in members[1].transport.writes for f in w] == [None, "r", None]


@pytest.mark.gen_test
async def test_a_second_fan_out_of_a_room_in_one_tick_is_queued_and_coalesced():
    flusher, members = room(2)
    fan_out([m.peer for m in members], [message(1)], {}, flusher.claim_direct("lobby"))
    for seq in (2, 3):
        fan_out([m.peer for m in members], [message(seq)], {}, flusher.claim_direct("lobby"))
    assert flusher.claim_direct("dev")  # another room is not held back
    flusher.flush()
    for m in members:
        assert m.received() == [1, 2, 3]
        assert [[f["seq"] for f in w] for w in m.transport.writes] == [[2, 3]]
    assert flusher.claim_direct("lobby")  # a new tick


@pytest.mark.gen_test
async def test_fan_out_to_a_member_whose_socket_takes_part_keeps_its_frames_in_order():
    flusher, members = room(2)
    slow = members[1]
    slow.sock.room = 5
    slow.transport.busy = True  # the rest waits in the transport's buffer too
    fan_out([m.peer for m in members], [message(1)], {}, flusher.claim_direct("lobby"))
    assert slow.sock.data + b"".join(slow.rest) == message(1).data
    flusher.flush()
    slow.sock.room = None
    fan_out([m.peer for m in members], [message(2)], {}, flusher.claim_direct("lobby"))
    flusher.flush()
    assert slow.transport.writes == []  # seq 2 waits in the outbox while seq 1's rest is in flight
    assert slow.peer.outbox.queued_bytes == len(message(2).data)
    slow.transport.finish()
    flusher.flush()
    assert [[f["seq"] for f in w] for w in slow.transport.writes] == [[2]]
    assert members[0].received() == [1, 2]


@pytest.mark.gen_test
async def test_fan_out_to_a_socket_that_would_block_hands_the_whole_frame_to_the_transport():
    flusher, members = room(1)
    members[0].sock.room = 0
    fan_out([m.peer for m in members], [message(1)], {}, flusher.claim_direct("lobby"))
    assert members[0].rest == [message(1).data]
