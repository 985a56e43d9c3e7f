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


def test_a_held_message_past_one_the_fill_lacks_keeps_the_room_held_for_another_fill():
    # Publishing is fire and forget, and a process's own commit reaches it
    # through its commit listener, which can run after a later seq came over
    # pub/sub: what was held is no proof that nothing lies between it and the fill.
    s = Sequencer()
    s.hold("lobby")
    s.resume("lobby", 0, [m(1)])
    assert s.offer(m(3)) is None  # 2 never came
    assert s.hold("lobby") == 1
    assert seqs(s.offer(m(5))) == []  # held during the fill; 4 is not here yet
    # The fill read the seq before 3 and 4 were committed: it has only 2.
    assert seqs(s.resume("lobby", 2, [m(2)])) == [2, 3]  # 4 is missing: 5 waits
    assert not s.flowing("lobby")  # still held: the caller fills again
    assert s.seen("lobby") == 3
    assert seqs(s.offer(m(6))) == []  # held meanwhile
    assert s.hold("lobby") == 3  # the next fill starts after 3
    assert seqs(s.resume("lobby", 6, [m(4), m(5), m(6)])) == [4, 5, 6]
    assert s.flowing("lobby")
    assert seqs(s.offer(m(7))) == [7]


def test_a_first_subscription_keeps_held_messages_past_a_missing_one():
    s = Sequencer()
    s.hold("lobby")
    assert seqs(s.offer(m(6))) == []  # 5 was committed but is not here yet
    assert seqs(s.resume("lobby", 4, [])) == []
    assert not s.flowing("lobby")
    assert s.hold("lobby") == 4  # the joiner's history ends at 4: fill from there
    assert seqs(s.resume("lobby", 6, [m(5), m(6)])) == [5, 6]
    assert s.flowing("lobby")
