"""The per-room cursor, alone: no socket, no loop."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chat.client.cursor import RoomCursor, Verdict


def test_the_next_seq_is_delivered_and_moves_the_cursor() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=4)

    accepted = cursor.accept(5, "m5")

    assert accepted.verdict is Verdict.DELIVER
    assert accepted.released == ("m5",)
    assert cursor.last == 5
    assert cursor.fill_after is None


def test_a_seq_at_or_below_the_cursor_is_a_duplicate() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=4)

    assert cursor.accept(4, "again").verdict is Verdict.DUPLICATE
    assert cursor.accept(1, "old").verdict is Verdict.DUPLICATE
    assert cursor.last == 4


def test_a_seq_past_a_hole_is_held_and_names_where_to_fill_from() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=4)

    accepted = cursor.accept(8, "m8")

    assert accepted.verdict is Verdict.HELD
    assert accepted.released == ()
    assert accepted.fill_after == 4
    assert cursor.known == 7
    assert cursor.held == 1
    assert cursor.fill_after == 4


def test_a_held_seq_arriving_again_is_a_duplicate() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=0)
    cursor.accept(3, "m3")

    assert cursor.accept(3, "m3 again").verdict is Verdict.DUPLICATE
    assert cursor.held == 1


def test_filling_the_hole_releases_the_held_messages_in_order() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=0)
    cursor.accept(3, "m3")
    cursor.accept(4, "m4")

    assert cursor.accept(2, "m2").verdict is Verdict.HELD
    accepted = cursor.accept(1, "m1")

    assert accepted.released == ("m1", "m2", "m3", "m4")
    assert cursor.last == 4
    assert cursor.held == 0


def test_expect_says_where_to_fetch_from_only_when_messages_are_missing() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=10)

    assert cursor.expect(10) is None
    assert cursor.expect(9) is None
    assert cursor.expect(15) == 10
    assert cursor.known == 15


def test_a_history_page_fills_the_hole_and_releases_what_it_held() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=0)
    cursor.accept(4, "live4")

    filled = cursor.page(0, [(1, "h1"), (2, "h2"), (3, "h3"), (4, "h4")])

    assert filled.released == ("h1", "h2", "h3", "live4")
    assert filled.skipped == ()
    assert cursor.last == 4
    assert cursor.fill_after is None


def test_a_seq_missing_below_a_pages_highest_is_skipped_and_releases_what_follows() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=0)
    cursor.accept(5, "live5")

    # The store never stored 2: it cannot come later, so it is not waited for.
    filled = cursor.page(0, [(1, "h1"), (3, "h3"), (4, "h4")])

    assert filled.released == ("h1", "h3", "h4", "live5")
    assert filled.skipped == ((2, 2),)
    assert cursor.last == 5


def test_an_empty_page_gives_up_on_the_hole_and_releases_the_held_messages() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=3)
    cursor.accept(7, "live7")

    filled = cursor.page(3, [])

    assert filled.released == ("live7",)
    assert filled.skipped == ((4, 6),)
    assert cursor.last == 7
    assert cursor.fill_after is None


def test_an_empty_page_with_nothing_held_stops_the_fill() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=3)
    cursor.expect(9)

    filled = cursor.page(3, [])

    assert filled.released == ()
    assert filled.skipped == ((4, 9),)
    assert cursor.fill_after is None


def test_a_partial_page_leaves_the_rest_to_the_next_page() -> None:
    cursor: RoomCursor[str] = RoomCursor(last=0)
    cursor.expect(5)

    filled = cursor.page(0, [(1, "h1"), (2, "h2")])

    assert filled.released == ("h1", "h2")
    assert cursor.fill_after == 2


@given(st.lists(st.integers(min_value=1, max_value=30), max_size=80))
def test_delivery_is_ascending_once_each_and_stops_at_the_first_hole(seqs: list[int]) -> None:
    cursor: RoomCursor[int] = RoomCursor(last=0)

    delivered = [m for seq in seqs for m in cursor.accept(seq, seq).released]

    prefix = 0
    while prefix + 1 in seqs:
        prefix += 1
    assert delivered == list(range(1, prefix + 1))
    assert cursor.last == prefix
    assert cursor.held == len(set(seqs) - set(delivered))


@given(
    st.integers(min_value=1, max_value=40),
    st.data(),
)
def test_live_messages_and_history_pages_deliver_every_stored_message_once_in_order(
    newest: int, data: st.DataObject
) -> None:
    stored = sorted(data.draw(st.sets(st.integers(min_value=1, max_value=newest))) | {newest})
    live = data.draw(st.lists(st.sampled_from(stored), max_size=60))
    limit = data.draw(st.integers(min_value=1, max_value=10))
    cursor: RoomCursor[int] = RoomCursor(last=0)

    delivered = [m for seq in live for m in cursor.accept(seq, seq).released]
    cursor.expect(newest)
    pages = 0
    while (after := cursor.fill_after) is not None:
        page = [seq for seq in stored if seq > after][:limit]
        delivered.extend(cursor.page(after, [(seq, seq) for seq in page]).released)
        pages += 1
        assert pages <= newest + 1, "the fill must end"

    assert delivered == stored
    assert cursor.last == newest
    assert cursor.held == 0


# -- one event log: edits, deletions and reactions take seqs like messages ------------------


def event(seq: int, kind: str, target: int | None = None) -> dict[str, object]:
    frame: dict[str, object] = {"type": kind, "room": "ops", "seq": seq}
    if target is not None:
        frame["target"] = target
    return frame


def test_edits_deletions_and_reactions_fill_a_hole_and_release_what_it_held_in_seq_order() -> None:
    # Live: message 1, then a reaction 4 and a message 5 (2 and 3 were lost).
    # The history page after 1 holds every kind: the edit 2 and the deletion 3.
    cursor: RoomCursor[dict[str, object]] = RoomCursor(last=0)
    delivered = list(cursor.accept(1, event(1, "message")).released)
    held = cursor.accept(4, event(4, "reaction", target=1))
    assert (held.verdict, held.fill_after) == (Verdict.HELD, 1)
    assert cursor.accept(5, event(5, "message")).verdict is Verdict.HELD

    page = [(2, event(2, "edit", target=1)), (3, event(3, "delete", target=1)), (4, event(4, "reaction", target=1))]
    filled = cursor.page(1, page)
    delivered.extend(filled.released)

    assert [(e["seq"], e["type"]) for e in delivered] == [
        (1, "message"),
        (2, "edit"),
        (3, "delete"),
        (4, "reaction"),
        (5, "message"),
    ]
    assert filled.skipped == ()
    assert (cursor.last, cursor.fill_after) == (5, None)


def test_a_resume_that_returns_only_edits_and_reactions_moves_the_cursor_through_them() -> None:
    # ``since`` 3: nothing new was said while away, but the old message 2 was edited
    # and reacted to. The cursor moves through those seqs, so the next live
    # message (8) is delivered at once rather than taken for a hole.
    cursor: RoomCursor[dict[str, object]] = RoomCursor(last=3)
    released: list[dict[str, object]] = []
    for seq, kind in ((4, "edit"), (5, "reaction"), (6, "reaction"), (7, "delete")):
        released.extend(cursor.accept(seq, event(seq, kind, target=2)).released)
    assert cursor.expect(7) is None
    live = cursor.accept(8, event(8, "message"))

    assert live.verdict is Verdict.DELIVER
    assert [e["seq"] for e in [*released, *live.released]] == [4, 5, 6, 7, 8]
