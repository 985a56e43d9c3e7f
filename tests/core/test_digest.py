"""Presence held back in busy rooms (chat.core.digest), on a virtual clock and a hand-run timer."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chat.core.digest import MAX_WINDOW_S, SMALL, Change, PresenceDigest, window


class Timers:
    """Timers that fire only when the test says time has come."""

    def __init__(self) -> None:
        self.now = 0.0
        self.due: list[tuple[float, Callable[[], None], Timers.Handle]] = []

    class Handle:
        def __init__(self) -> None:
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def clock(self) -> float:
        return self.now

    def schedule(self, at: float, callback: Callable[[], None]) -> Handle:
        handle = Timers.Handle()
        self.due.append((at, callback, handle))
        return handle

    def advance(self, seconds: float) -> None:
        self.now += seconds
        ready = [d for d in self.due if d[0] <= self.now]
        self.due = [d for d in self.due if d[0] > self.now]
        for _, callback, handle in ready:
            if not handle.cancelled:
                callback()

    def pending(self) -> int:
        return sum(not handle.cancelled for _, _, handle in self.due)


@pytest.fixture
def timers() -> Timers:
    return Timers()


def digest(timers: Timers) -> tuple[PresenceDigest, list[tuple[str, list[Change]]]]:
    sent: list[tuple[str, list[Change]]] = []
    return PresenceDigest(timers.clock, timers.schedule, lambda room, changes: sent.append((room, changes))), sent


def join(name: str, account: bool = False) -> Change:
    return Change(name, True, account)


def leave(name: str) -> Change:
    return Change(name, False, False)


def test_the_window_grows_with_the_room_and_stops_at_five_seconds():
    assert window(SMALL - 1) == 0.0
    assert window(SMALL) == pytest.approx(0.5)
    assert window(40) == pytest.approx(2.0)
    assert window(100) == MAX_WINDOW_S == window(10_000)


def test_a_small_room_gets_every_change_at_once(timers):
    d, sent = digest(timers)
    d.counted("r", 3)
    for change in [join("a"), join("b"), leave("a"), join("c")]:
        d.change("r", change)
    assert sent == [("r", [join("a")]), ("r", [join("b")]), ("r", [leave("a")]), ("r", [join("c")])]
    assert timers.pending() == 0


def test_a_busy_room_sends_the_first_change_at_once_and_the_rest_together_at_the_end_of_its_window(timers):
    d, sent = digest(timers)
    d.counted("r", 39)  # the first join makes it 40: a 2 s window
    d.change("r", join("a", account=True))
    assert sent == [("r", [join("a", account=True)])]
    timers.advance(0.5)
    d.change("r", join("b"))
    timers.advance(0.5)
    d.change("r", leave("c"))
    assert len(sent) == 1  # held
    timers.advance(0.99)
    assert len(sent) == 1
    timers.advance(0.02)  # 2 s after the first went
    assert sent[1] == ("r", [join("b"), leave("c")])
    # Quiet since: the next change goes at once once the new window has passed.
    timers.advance(2.0)
    d.change("r", join("d"))
    assert sent[2] == ("r", [join("d")])


def test_a_change_undone_within_the_window_is_never_sent(timers):
    d, sent = digest(timers)
    d.counted("r", 49)
    d.change("r", join("a"))  # at once
    d.change("r", join("reload"))
    d.change("r", leave("reload"))  # a reload's leave and join, or a join and leave: no change at all
    d.change("r", leave("a"))
    d.change("r", join("a"))
    timers.advance(MAX_WINDOW_S)
    assert sent == [("r", [join("a")])]


def one_sent_one_held(timers: Timers) -> tuple[PresenceDigest, list[tuple[str, list[Change]]]]:
    """A room of 100: a's join went at once, b's waits for the end of the window."""
    d, sent = digest(timers)
    d.counted("r", 99)
    d.change("r", join("a"))
    d.change("r", join("b"))
    return d, sent


def test_flush_sends_what_waits_at_once_and_restarts_the_window(timers):
    d, sent = one_sent_one_held(timers)
    d.flush("r")
    assert sent == [("r", [join("a")]), ("r", [join("b")])]
    assert timers.pending() == 0  # its timer was cancelled
    d.flush("r")  # nothing waits: nothing sent
    d.change("r", join("c"))  # within the new window: held
    assert len(sent) == 2
    assert d.waiting("r") == [join("c")]


def test_a_room_forgotten_sends_nothing_more(timers):
    d, sent = one_sent_one_held(timers)
    d.forget("r")
    timers.advance(MAX_WINDOW_S)
    assert sent == [("r", [join("a")])]
    assert d.waiting("r") == []


def test_rooms_are_held_apart(timers):
    d, sent = digest(timers)
    d.counted("big", 99)
    d.counted("small", 2)
    d.change("big", join("a"))
    d.change("big", join("b"))
    d.change("small", join("b"))
    assert sent == [("big", [join("a")]), ("small", [join("b")])]


def test_the_count_follows_the_changes(timers):
    d, sent = digest(timers)
    d.counted("r", SMALL)  # at the edge: a leave makes it small again
    d.change("r", leave("a"))  # SMALL - 1 members: no window
    d.change("r", leave("b"))
    assert len(sent) == 2
