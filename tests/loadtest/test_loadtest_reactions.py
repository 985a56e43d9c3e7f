"""--reactions-per-message: reactions flow through a room's event log beside the messages,
and every member is owed each of them like a message (a fake socket, no server)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from chat.core.model import REACTIONS
from chat.loadtest.accounting import Ledger
from chat.loadtest.client import Member, Target, message_text, parse_text
from chat.loadtest.connection import Connection
from chat.loadtest.counters import Counters
from chat.loadtest.options import parse_args
from chat.loadtest.reactions import run_prefix
from chat.loadtest.schedule import MemberPlan
from tests.loadtest.test_loadtest import ROOM, RUN, FakeConnection

TIMEOUT_S = 5.0


def member_with_reactions(
    ledger: Ledger, per_message: float, name: str = "lt-0-0"
) -> tuple[Member, FakeConnection, Counters]:
    counters = Counters()
    plan = MemberPlan(0, name, ROOM, 0, None, 0)
    member = Member(plan, Target("ws://127.0.0.1:1/ws"), ledger, counters, 80, RUN, reactions_per_message=per_message)
    member.membership = ledger.join(member.name, ROOM, at_ns=1, last_seq=0)
    fake = FakeConnection()
    member.conn = cast(Connection, fake)
    member._go_live(cast(Connection, fake))
    return member, fake, counters


def reaction(seq: int, target: int, name: str, ts_ms: int, ref: str | None = None) -> dict[str, object]:
    frame: dict[str, object] = {"type": "reaction", "room": ROOM, "seq": seq, "target": target, "emoji": "👍"}
    frame.update(on=True, name=name, ts=ts_ms, guest=True)
    if ref is not None:
        frame["ref"] = ref
    return frame


@pytest.mark.gen_test
async def test_a_sender_reacts_to_the_newest_message_and_every_reaction_is_owed_like_a_message():
    ledger = Ledger()
    member, fake, counters = member_with_reactions(ledger, per_message=1)
    fake.message(1, 0, 0, name="lt-0-1")  # sent before we joined (at 1 ns); what ours react to
    assert await member.send_on_schedule([(1, 0), (2, 0)], deadline_ns=1 << 62) == 0
    sent = [await asyncio.wait_for(fake.sent.get(), TIMEOUT_S) for _ in range(4)]
    assert [(f["type"], f.get("seq"), f.get("emoji")) for f in sent] == [
        ("say", None, None),
        ("react", 1, REACTIONS[0]),
        ("say", None, None),
        ("react", 1, REACTIONS[1]),
    ]
    assert (counters.sent, counters.reactions_sent, counters.sent_by_room[ROOM]) == (2, 2, 4)
    # The room's log: our says and reactions take seqs 2..5, each comes back once.
    first, second = (parse_text(str(s["text"]), RUN) for s in (sent[0], sent[2]))
    assert first is not None
    assert second is not None
    fake.message(2, first[0], first[2], name=member.name)
    fake.frame(**reaction(3, 1, member.name, ts_ms=2**40, ref=sent[1]["ref"]))
    fake.message(4, second[0], second[2], name=member.name)
    fake.frame(**reaction(5, 1, member.name, ts_ms=2**40, ref=sent[3]["ref"]))
    total = ledger.summary().total
    # Owed: the 2 says and 2 reactions sent after joining (message 1 was never "sent" in this ledger: extra).
    assert (total.expected, total.received, total.lost, total.extra) == (4, 4, 0, 1)
    assert total.clean
    assert (counters.reaction_deliveries, counters.deliveries) == (2, 5)
    assert member.reactions.unanswered == 0


@pytest.mark.gen_test
async def test_a_lost_reaction_is_counted_lost():
    ledger = Ledger()
    member, fake, _ = member_with_reactions(ledger, per_message=1)
    fake.message(1, 0, 0, name="lt-0-1")  # sent before we joined: not owed
    await member.send_on_schedule([(1, 0)], deadline_ns=1 << 62)
    say = await asyncio.wait_for(fake.sent.get(), TIMEOUT_S)
    parsed = parse_text(str(say["text"]), RUN)
    assert parsed is not None
    fake.message(2, parsed[0], parsed[2], name=member.name)  # the reaction (seq 3) never comes
    total = ledger.summary().total
    assert (total.expected, total.received, total.lost) == (2, 1, 1)


@pytest.mark.gen_test
async def test_a_refused_reaction_is_owed_to_nobody_and_leaves_the_says_alone():
    ledger = Ledger()
    member, fake, counters = member_with_reactions(ledger, per_message=1)
    fake.message(1, 0, 0, name="lt-0-1")  # sent before we joined: not owed
    await member.send_on_schedule([(1, 0)], deadline_ns=1 << 62)
    say, react = [await asyncio.wait_for(fake.sent.get(), TIMEOUT_S) for _ in range(2)]
    fake.frame(type="error", code="bad_request", message="no", ref=react["ref"])
    assert counters.errors == {"react: bad_request": 1}
    assert (counters.reaction_errors, counters.send_errors, counters.sent_by_room[ROOM]) == (1, 0, 1)
    assert len(member.unacked) == 1  # the say still waits for its echo
    parsed = parse_text(str(say["text"]), RUN)
    assert parsed is not None
    fake.message(2, parsed[0], parsed[2], name=member.name)
    total = ledger.summary().total
    assert (total.expected, total.received, total.lost) == (1, 1, 0)


@pytest.mark.gen_test
async def test_a_fractional_rate_reacts_every_other_say_and_never_before_a_message_is_seen():
    member, fake, counters = member_with_reactions(Ledger(), per_message=0.5)
    await member.send_on_schedule([(1, 0)], deadline_ns=1 << 62)  # nothing seen yet: nothing to react to
    fake.message(1, 0, 10, name="lt-0-1")
    await member.send_on_schedule([(2, 0), (3, 0), (4, 0), (5, 0)], deadline_ns=1 << 62)
    kinds = [fake.sent.get_nowait()["type"] for _ in range(fake.sent.qsize())]
    assert kinds == ["say", "say", "say", "react", "say", "say", "react"]
    assert counters.reactions_sent == 2


@pytest.mark.gen_test
async def test_a_gap_through_reactions_is_filled_from_history_and_counted_late():
    ledger = Ledger()
    for at in (10, 20, 30):
        ledger.sent(ROOM, at)
    member, fake, counters = member_with_reactions(ledger, per_message=0, name="lt-0-3")
    fake.message(1, 0, 10, name="lt-0-1")
    fake.frame(type="gap", room=ROOM, from_seq=2, to_seq=3)
    request = await asyncio.wait_for(fake.sent.get(), TIMEOUT_S)
    assert (request["type"], request["after"]) == ("history", 1)
    history = [
        reaction(2, 1, "lt-0-1", ts_ms=0),  # made at ts 0: before this member joined (at 1 ns): extra
        {"type": "message", "room": ROOM, "seq": 3, "name": "lt-0-1", "text": message_text(RUN, 1, 30, 30, 80)},
    ]
    fake.frame(type="history", room=ROOM, messages=history, ref=request["ref"])
    assert member._filler is not None
    await asyncio.wait_for(member._filler, TIMEOUT_S)
    fake.frame(**reaction(4, 1, "lt-0-1", ts_ms=40))  # live again after the gap, in order
    membership = member.membership
    assert membership is not None
    assert (membership.received, membership.late, membership.extra, membership.out_of_order) == (3, 2, 1, 0)
    assert membership.last_seq == 4
    assert counters.reaction_deliveries == 2


@pytest.mark.gen_test
async def test_reactions_of_people_or_other_runs_are_foreign():
    _, fake, counters = member_with_reactions(Ledger(), per_message=0, name="lt-0-3")
    fake.frame(**reaction(1, 1, "human", ts_ms=5))
    fake.frame(**reaction(2, 1, "other-0-1", ts_ms=5))
    assert (counters.foreign, counters.deliveries, counters.reaction_deliveries) == (2, 0, 0)
    assert run_prefix("lt-0-3") == run_prefix("lt-1-17") == "lt-"
    assert run_prefix("load-x-1-2") == "load-x-"


def test_the_option_takes_a_rate_and_refuses_a_negative_one(capsys):
    config = parse_args(["ws://127.0.0.1:1/ws", "--reactions-per-message", "0.5"])
    assert config.reactions_per_message == 0.5
    assert parse_args(["ws://127.0.0.1:1/ws"]).reactions_per_message == 0
    with pytest.raises(SystemExit):
        parse_args(["ws://127.0.0.1:1/ws", "--reactions-per-message", "-1"])
    assert "--reactions-per-message must not be negative" in capsys.readouterr().err
