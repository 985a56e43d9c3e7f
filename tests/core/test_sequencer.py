"""The per-room ordering rules that make pub/sub deliveries exactly-once and in order."""

from __future__ import annotations

from chat.core.model import Message
from chat.core.sequencer import Sequencer


def m(seq: int, room: str = "lobby") -> Message:
    return Message(room, seq, "bob", f"m{seq}", seq)


def seqs(messages: list[Message] | None) -> list[int] | None:
    return None if messages is None else [x.seq for x in messages]


def test_a_fresh_subscription_passes_on_only_what_is_newer_than_the_read_seq():
    s = Sequencer()
    assert s.hold("lobby") is None  # nothing passed on yet: no fill needed
    assert seqs(s.offer(m(4))) == []  # held while the seq is read
    assert seqs(s.offer(m(5))) == []
    assert seqs(s.resume("lobby", 4, [])) == [5]  # 4 is in the history the joiner reads
    assert seqs(s.offer(m(6))) == [6]
    assert s.seen("lobby") == 6


def test_a_repeat_is_dropped():
    s = Sequencer()
    s.hold("lobby")
    s.resume("lobby", 2, [])
    assert seqs(s.offer(m(3))) == [3]
    assert seqs(s.offer(m(3))) == []
    assert seqs(s.offer(m(2))) == []


def test_a_gap_asks_for_a_fill_and_the_fill_restores_order_without_repeats():
    s = Sequencer()
    s.hold("lobby")
    s.resume("lobby", 0, [])
    assert seqs(s.offer(m(1))) == [1]
    assert s.offer(m(4)) is None  # 2 and 3 never came
    assert seqs(s.offer(m(5))) == []  # held until the fill
    assert s.hold("lobby") == 1  # the fill starts after 1
    assert seqs(s.resume("lobby", 5, [m(2), m(3), m(4), m(5)])) == [2, 3, 4, 5]
    assert seqs(s.offer(m(6))) == [6]


def test_a_reconnect_fills_what_was_published_while_down_then_flows():
    s = Sequencer()
    s.hold("lobby")
    s.resume("lobby", 0, [m(1)])
    assert s.hold("lobby") == 1  # the subscription dropped after 1
    assert seqs(s.offer(m(4))) == []  # the new subscription's first message
    assert seqs(s.resume("lobby", 4, [m(2), m(3), m(4)])) == [2, 3, 4]
    assert seqs(s.offer(m(5))) == [5]


def test_a_fill_cut_short_by_trimming_does_not_hold_up_newer_messages():
    s = Sequencer()
    s.hold("lobby")
    s.resume("lobby", 10, [])
    s.hold("lobby")
    s.offer(m(1000))
    # The stream kept only 990..999 of 11..999.
    assert seqs(s.resume("lobby", 999, [m(i) for i in range(990, 1000)])) == [*range(990, 1000), 1000]


def test_rooms_are_independent_and_forgotten_rooms_are_ignored():
    s = Sequencer()
    for room in ("a", "b"):
        s.hold(room)
        s.resume(room, 0, [])
    assert seqs(s.offer(m(1, "a"))) == [1]
    assert s.offer(m(3, "b")) is None
    assert seqs(s.offer(m(2, "a"))) == [2]
    s.forget("a")
    assert seqs(s.offer(m(3, "a"))) == []
    assert "a" not in s
    assert "b" in s
