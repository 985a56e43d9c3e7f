"""The load tester's pure parts: the delivery ledger, SLOs, histograms, the plan; and a member's frame handling."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, cast

import pytest

from chat.client import ChatError as Refused
from chat.loadtest import stats
from chat.loadtest.accounting import Ledger
from chat.loadtest.client import ClosedByServer, Member, Target, message_text, parse_text
from chat.loadtest.connection import Connection
from chat.loadtest.counters import Counters
from chat.loadtest.metrics import metrics_delta, parse_metrics
from chat.loadtest.monitor import Monitor
from chat.loadtest.options import parse_args
from chat.loadtest.schedule import MemberPlan, members_of, parse_source_ips, send_times, storm_victims
from chat.loadtest.slo import Figures, SloError, evaluate, parse_slo
from chat.loadtest.worker import Tick

ROOM = "lt-0"
RUN = "ab12cd"


def ledger_with(*sends_ns: int, room: str = ROOM) -> Ledger:
    ledger = Ledger()
    for at in sends_ns:
        ledger.sent(room, at)
    return ledger


# -- the ledger ---------------------------------------------------------------------------


def test_ledger_is_clean_when_every_member_gets_every_message_in_order():
    ledger = ledger_with(10, 20, 30)
    for name in ("a", "b"):
        m = ledger.join(name, ROOM, at_ns=1, last_seq=0)
        for seq, sent in ((1, 10), (2, 20), (3, 30)):
            m.deliver(seq, sent)
    total = ledger.summary().total
    assert (total.expected, total.received, total.lost, total.duplicated, total.out_of_order) == (6, 6, 0, 0, 0)
    assert total.clean


def test_ledger_detects_a_lost_message():
    ledger = ledger_with(10, 20, 30)
    m = ledger.join("a", ROOM, at_ns=1, last_seq=0)
    m.deliver(1, 10)
    m.deliver(3, 30)
    total = ledger.summary().total
    assert (total.expected, total.received, total.lost) == (3, 2, 1)
    assert m.holes == {2}


def test_ledger_detects_a_duplicated_message():
    ledger = ledger_with(10, 20)
    m = ledger.join("a", ROOM, at_ns=1, last_seq=0)
    m.deliver(1, 10)
    m.deliver(2, 20)
    m.deliver(2, 20)
    total = ledger.summary().total
    assert (total.received, total.lost, total.duplicated, total.out_of_order) == (2, 0, 1, 0)


def test_ledger_detects_a_reordered_message():
    ledger = ledger_with(10, 20, 30)
    m = ledger.join("a", ROOM, at_ns=1, last_seq=0)
    for seq, sent in ((1, 10), (3, 30), (2, 20)):
        m.deliver(seq, sent)
    total = ledger.summary().total
    assert (total.received, total.lost, total.duplicated, total.out_of_order) == (3, 0, 0, 1)


def test_ledger_does_not_owe_a_late_joiner_what_was_sent_before_it_joined():
    ledger = ledger_with(10, 20, 30)
    early = ledger.join("early", ROOM, at_ns=1, last_seq=0)
    late = ledger.join("late", ROOM, at_ns=25, last_seq=2)
    for seq, sent in ((1, 10), (2, 20), (3, 30)):
        early.deliver(seq, sent)
    late.deliver(3, 30)
    summary = ledger.summary()
    assert (summary.by_client["late"].expected, summary.by_client["late"].lost) == (1, 0)
    assert summary.total.expected == 4
    assert summary.total.clean


def test_ledger_counts_an_old_message_seen_by_a_late_joiner_as_extra_not_as_an_error():
    ledger = ledger_with(10, 30)
    late = ledger.join("late", ROOM, at_ns=25, last_seq=0)
    late.deliver(1, 10)  # published while it was joining: the server may send it, but it is not owed
    late.deliver(2, 30)
    tally = ledger.summary().by_client["late"]
    assert (tally.expected, tally.received, tally.extra, tally.lost) == (1, 1, 1, 0)


def test_ledger_stops_owing_a_member_what_was_sent_after_it_left():
    ledger = ledger_with(10, 20, 30)
    m = ledger.join("a", ROOM, at_ns=1, last_seq=0)
    m.deliver(1, 10)
    Ledger.leave(m, at_ns=15)
    assert ledger.summary().total.expected == 1
    assert ledger.summary().total.clean


def test_ledger_counts_a_gap_filled_from_history_as_late_not_lost_nor_out_of_order():
    ledger = ledger_with(10, 20, 30, 40)
    m = ledger.join("a", ROOM, at_ns=1, last_seq=0)
    m.deliver(1, 10)
    m.gap(2, 3)
    m.deliver(4, 40)
    m.fill(2, 20)
    m.fill(3, 30)
    total = ledger.summary().total
    assert (total.expected, total.received, total.late, total.gaps) == (4, 4, 2, 1)
    assert total.clean


def test_ledger_counts_a_gap_never_filled_as_lost():
    ledger = ledger_with(10, 20, 30)
    m = ledger.join("a", ROOM, at_ns=1, last_seq=0)
    m.deliver(1, 10)
    m.gap(2, 2)
    m.deliver(3, 30)
    total = ledger.summary().total
    assert (total.lost, total.out_of_order) == (1, 0)


def test_ledger_counts_a_history_fill_of_something_already_received_as_duplicated():
    ledger = ledger_with(10, 20)
    m = ledger.join("a", ROOM, at_ns=1, last_seq=0)
    m.deliver(1, 10)
    m.deliver(2, 20)
    m.fill(2, 20)
    assert ledger.summary().total.duplicated == 1


def test_ledger_does_not_owe_a_message_the_server_refused():
    ledger = ledger_with(10, 20)
    ledger.failed(ROOM, 20)
    m = ledger.join("a", ROOM, at_ns=1, last_seq=0)
    m.deliver(1, 10)
    total = ledger.summary().total
    assert (total.expected, total.lost) == (1, 0)


def test_ledger_learns_the_first_seq_from_the_first_message_when_joined_had_no_last_seq():
    ledger = ledger_with(10, 20)
    m = ledger.join("a", ROOM, at_ns=1, last_seq=None)
    m.deliver(41, 10)
    m.deliver(42, 20)
    assert ledger.summary().total.clean


def test_ledgers_of_several_processes_merge_sends_and_members():
    sender_side = ledger_with(10, 20)  # the process that sent
    member_side = Ledger()  # another process, whose member received
    m = member_side.join("b", ROOM, at_ns=1, last_seq=0)
    m.deliver(1, 10)
    merged = Ledger()
    merged.merge(sender_side)
    merged.merge(member_side)
    total = merged.summary().total
    assert (total.expected, total.received, total.lost) == (2, 1, 1)


def test_ledger_tallies_each_room_apart():
    ledger = ledger_with(10)
    ledger.sent("lt-1", 10)
    ledger.sent("lt-1", 20)
    ledger.join("a", ROOM, at_ns=1, last_seq=0).deliver(1, 10)
    ledger.join("b", "lt-1", at_ns=1, last_seq=0).deliver(1, 10)
    rooms = ledger.summary().rooms
    assert (rooms[ROOM].expected, rooms[ROOM].lost) == (1, 0)
    assert (rooms["lt-1"].expected, rooms["lt-1"].lost) == (2, 1)


def test_membership_last_seq_is_what_a_resume_asks_for():
    m = Ledger().join("a", ROOM, at_ns=1, last_seq=7)
    assert m.last_seq == 7
    m.deliver(8, 10)
    assert m.last_seq == 8


# -- SLOs ------------------------------------------------------------------------------------


def figures(**latency: float) -> Figures:
    return Figures(latency_ms=latency, lost=0, duplicated=0, out_of_order=0, errors=0, expected=1000)


def test_slo_parses_latency_with_units_and_counts():
    objectives = parse_slo("p99<100ms, p99.9<=1s, max<500us, loss=0, errors<=3, dup<=0.1%")
    assert [(o.key, o.op, o.limit, o.percent) for o in objectives] == [
        ("p99", "<", 100.0, False),
        ("p99.9", "<=", 1000.0, False),
        ("max", "<", 0.5, False),
        ("loss", "=", 0.0, False),
        ("errors", "<=", 3.0, False),
        ("dup", "<=", 0.1, True),
    ]


@pytest.mark.parametrize(
    "spec",
    ["p99", "p98<1ms", "p99<100", "p99=1ms", "loss<1", "loss=1ms", "errors<=1%", "", "p50<fast"],
)
def test_slo_refuses_what_it_cannot_read(spec):
    with pytest.raises(SloError):
        parse_slo(spec)


def test_slo_met_gives_no_failure():
    assert evaluate(parse_slo("p99<100ms,loss=0"), figures(p99=99.0)) == []


def test_slo_missed_latency_is_explained():
    failures = evaluate(parse_slo("p50<0.001ms"), figures(p50=0.8))
    assert failures == ["p50<0.001ms: measured p50 = 0.800 ms"]


def test_slo_missed_count_and_percentage():
    run = Figures(latency_ms={}, lost=2, duplicated=5, out_of_order=0, errors=1, expected=1000)
    failures = evaluate(parse_slo("loss=0,dup<=0.1%,ooo=0,errors<=1"), run)
    assert failures == ["loss=0: measured loss = 2", "dup<=0.1%: measured 0.5000% (5 of 1000)"]


def test_slo_on_latency_fails_when_nothing_was_delivered():
    assert evaluate(parse_slo("p99<1s"), figures()) == ["p99<1s: no delivery was measured"]


# -- histograms --------------------------------------------------------------------------------


def test_histograms_merged_across_processes_give_the_percentiles_of_all_samples():
    rng = random.Random(7)
    samples = [int(rng.lognormvariate(8, 1.2)) + 1 for _ in range(20_000)]
    whole = stats.new_histogram()
    parts = [stats.new_histogram() for _ in range(3)]
    for i, value in enumerate(samples):
        whole.record_value(value)
        parts[i % 3].record_value(value)
    merged = stats.merge(stats.encode(p) for p in parts)
    assert stats.latency_ms(merged) == stats.latency_ms(whole)
    assert merged.get_total_count() == len(samples)


def test_bucket_counts_record_exactly_what_the_histogram_would():
    rng = random.Random(3)
    counts, reference = stats.BucketCounts(), stats.new_histogram()
    for _ in range(20_000):
        value = rng.choice([int(rng.expovariate(1 / 3000)), rng.randint(1, 2 * stats.HIGHEST_US)])
        counts.record(value)
        reference.record_value(min(max(value, stats.LOWEST_US), stats.HIGHEST_US))
    taken = counts.take()
    assert stats.latency_ms(taken) == stats.latency_ms(reference)
    assert counts.take().get_total_count() == 0  # taking starts the counts again


def test_sample_percentiles_are_nearest_rank():
    result = stats.sample_percentiles([5.0, 1.0, 3.0, 2.0, 4.0], (("p50", 50.0), ("p90", 90.0), ("max", 100.0)))
    assert result == {"p50": 3.0, "p90": 5.0, "max": 5.0}
    assert stats.sample_percentiles([], (("p50", 50.0),)) == {"p50": None}


def test_latency_of_an_empty_histogram_is_unknown():
    assert stats.latency_ms(stats.new_histogram()) == {
        "p50": None,
        "p90": None,
        "p99": None,
        "p99_9": None,
        "max": None,
        "count": 0,
    }


# -- the plan ------------------------------------------------------------------------------


def test_clients_spread_over_processes_and_rooms_and_senders_come_first():
    plans = [p for proc in range(3) for p in members_of(proc, 3, 10, rooms=2, senders=4, ramp=100, prefix="lt")]
    assert sorted(p.index for p in plans) == list(range(10))
    assert len({p.name for p in plans}) == 10
    by_index = {p.index: p for p in plans}
    assert by_index[4].name == "lt-1-4"
    assert [by_index[i].room for i in range(4)] == ["lt-0", "lt-1", "lt-0", "lt-1"]
    assert sorted(i for i, p in by_index.items() if p.sender is not None) == [0, 1, 2, 3]
    assert by_index[5].connect_offset_ns == 50_000_000  # 5 / 100 per second


def test_send_schedule_gives_each_message_to_exactly_one_sender_at_a_fixed_rate():
    go = 1_000_000_000
    schedule = sorted(item for s in range(3) for item in send_times(s, 3, total=10, rate=20, go_ns=go))
    assert [mid for mid, _ in schedule] == list(range(10))
    assert [at for _, at in schedule] == [go + n * 50_000_000 for n in range(10)]


def test_storm_picks_the_fraction_spread_over_the_list():
    names = [f"c{i}" for i in range(10)]
    assert storm_victims(names, 0.2) == ["c4", "c9"]
    assert storm_victims(names, 0.0) == []
    assert storm_victims(names, 1.0) == names


def test_source_ips_accept_ranges_and_lists():
    assert parse_source_ips("127.0.0.2-127.0.0.4, 127.0.1.1") == ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1"]
    assert parse_source_ips("") == []
    with pytest.raises(ValueError, match="counts down"):
        parse_source_ips("127.0.0.9-127.0.0.2")


def test_message_text_carries_id_and_times_and_has_the_asked_size():
    text = message_text("r1", 42, 1_700_000_000_000_000_000, 1_700_000_000_000_000_123, 100)
    assert len(text) == 100
    assert parse_text(text, "r1") == (42, 1_700_000_000_000_000_000, 1_700_000_000_000_000_123)
    assert parse_text(text, "r2") is None  # another run's
    assert parse_text("hello there", "r1") is None


def test_command_line_refuses_a_bad_slo_and_needs_a_url_or_spawn(capsys):
    with pytest.raises(SystemExit):
        parse_args(["ws://127.0.0.1:1/ws", "--slo", "p99<fast"])
    with pytest.raises(SystemExit):
        parse_args([])
    config = parse_args(["--spawn-server", "--server-arg=--history-on-join=0", "--clients", "5"])
    assert config.server_args == ("--history-on-join=0",)
    capsys.readouterr()


# -- server figures ---------------------------------------------------------------------------


def test_metrics_delta_keeps_chat_and_process_samples_but_not_buckets():
    before = parse_metrics("# TYPE chat_messages_total counter\nchat_messages_total 10\n")
    after = parse_metrics(
        "# TYPE chat_messages_total counter\nchat_messages_total 25\n"
        "# TYPE process_open_fds gauge\nprocess_open_fds 12\n"
        "# TYPE chat_fanout_seconds histogram\n"
        'chat_fanout_seconds_bucket{le="0.001"} 3\nchat_fanout_seconds_bucket{le="+Inf"} 4\n'
        "chat_fanout_seconds_count 4\nchat_fanout_seconds_sum 0.5\n"
        "# TYPE python_gc_objects_collected_total counter\npython_gc_objects_collected_total 9\n"
    )
    assert metrics_delta(before, after) == {
        "chat_fanout_seconds_count": 4.0,
        "chat_fanout_seconds_sum": 0.5,
        "chat_messages_total": 15.0,
        "process_open_fds": 12.0,
    }


def test_drain_ends_only_once_every_owed_delivery_arrived():
    monitor = Monitor(procs=2)

    def tick(proc: int, owed: int, sending_done: bool = True, sent: int = 0, members: int = 0) -> Tick:
        return Tick(
            proc=proc,
            index=1,
            open=members,
            connected=members,
            failed=0,
            sent=sent,
            deliveries=owed,
            owed_received=owed,
            errors=0,
            sent_by_room={ROOM: sent} if sent else {},
            members_by_room={ROOM: members} if members else {},
            sending_done=sending_done,
            latency=stats.encode(stats.new_histogram()),
        )

    monitor.add(tick(0, owed=10, sent=5, members=2))  # 5 messages to 2 + 3 members: 25 owed
    assert not monitor.all_delivered()  # the other process has not reported yet
    monitor.add(tick(1, owed=14, members=3))
    assert not monitor.all_delivered()
    monitor.add(tick(1, owed=15, members=3))
    assert monitor.all_delivered()
    monitor.add(tick(0, owed=10, sent=5, members=2, sending_done=False))
    assert not monitor.all_delivered()


# -- a member's frame handling, with a fake socket ------------------------------------------------


class FakeConnection:
    """Records what a member sends; the test delivers frames through ``on_text``."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.on_text = lambda data: None
        self.deliberate = False
        self.open_now = True

    def send_text(self, text: str) -> bool:
        self.sent.put_nowait(json.loads(text))
        return True

    def frame(self, **frame: object) -> None:
        self.on_text(json.dumps(frame).encode())

    def message(self, seq: int, mid: int, sent_ns: int, name: str = "someone") -> None:
        self.frame(
            type="message", room=ROOM, seq=seq, name=name, text=message_text(RUN, mid, sent_ns, sent_ns, 80), ts=0
        )


def live_member(ledger: Ledger, sender: int | None = None) -> tuple[Member, FakeConnection, Counters]:
    counters = Counters()
    plan = MemberPlan(0, "lt-0-0", ROOM, sender, None, 0)
    member = Member(plan, Target("ws://127.0.0.1:1/ws"), ledger, counters, message_bytes=80, run=RUN)
    member.membership = ledger.join(member.name, ROOM, at_ns=1, last_seq=0)
    fake = FakeConnection()
    member.conn = cast(Connection, fake)
    member._go_live(cast(Connection, fake))
    return member, fake, counters


@pytest.mark.gen_test
async def test_member_fetches_a_gap_with_history_and_counts_it_late():
    ledger = ledger_with(10, 20, 30, 40)
    member, fake, counters = live_member(ledger)
    fake.message(1, 0, 10)
    fake.frame(type="gap", room=ROOM, from_seq=2, to_seq=3)
    fake.message(4, 3, 40)
    request = await asyncio.wait_for(fake.sent.get(), 5)
    assert request == {"type": "history", "room": ROOM, "after": 1, "limit": 200, "ref": request["ref"]}
    history = [
        {"type": "message", "room": ROOM, "seq": seq, "name": "s", "text": message_text(RUN, mid, at, at, 80), "ts": 0}
        for seq, mid, at in ((2, 1, 20), (3, 2, 30), (4, 3, 40))  # one past the gap: already seen live
    ]
    fake.frame(type="history", room=ROOM, messages=history, ref=request["ref"])
    assert member._filler is not None
    await asyncio.wait_for(member._filler, 5)
    total = ledger.summary().total
    assert (total.expected, total.received, total.late, total.gaps) == (4, 4, 2, 1)
    assert total.clean
    assert counters.gaps == 1


@pytest.mark.gen_test
async def test_member_matches_an_error_to_its_oldest_unacknowledged_say():
    ledger = Ledger()
    member, fake, counters = live_member(ledger, sender=0)
    schedule = [(0, 0), (1, 0)]  # both already due: sent at once
    assert await member.send_on_schedule(schedule, deadline_ns=1 << 62) == 0
    says = [await fake.sent.get(), await fake.sent.get()]
    assert [s["type"] for s in says] == ["say", "say"]
    first = parse_text(says[0]["text"], RUN)
    second = parse_text(says[1]["text"], RUN)
    assert first is not None
    assert second is not None
    fake.frame(type="error", code="rate_limited", message="slow down")  # answers the first say
    fake.message(1, second[0], second[2], name=member.name)  # the second one, echoed
    assert (counters.sent, counters.send_errors) == (2, 1)
    assert counters.errors == {"say: rate_limited": 1}
    total = ledger.summary().total
    assert (total.expected, total.received, total.lost) == (1, 1, 0)
    assert not member.unacked


@pytest.mark.gen_test
async def test_member_counts_messages_of_people_and_of_other_runs_as_foreign():
    ledger = ledger_with(10)
    _, fake, counters = live_member(ledger)
    fake.frame(type="message", room=ROOM, seq=1, name="human", text="hello", ts=0)
    fake.frame(type="message", room=ROOM, seq=2, name="other", text=message_text("ffffff", 1, 10, 10, 80), ts=0)
    fake.frame(type="presence", room=ROOM, event="join", name="human")
    assert (counters.foreign, counters.deliveries) == (2, 0)


@pytest.mark.gen_test
async def test_a_failed_start_is_counted_by_the_stage_it_failed_in():
    # A join storm tells sockets closed at open (before welcome) from joins refused after it.
    async def closed_at_open() -> Connection:
        raise ClosedByServer(1013, "unavailable")

    async def welcomed() -> Connection:
        return cast(Connection, FakeConnection())

    async def join_refused(conn: Connection, since: int | None) -> dict[str, Any]:
        raise Refused("unavailable")

    counters = Counters()
    for i, (connect, join) in enumerate([(closed_at_open, join_refused), (welcomed, join_refused)]):
        member = Member(MemberPlan(i, f"lt-0-{i}", ROOM, None, None, 0), Target("ws://127.0.0.1:1/ws"), Ledger(),
                        counters, message_bytes=80, run=RUN)  # fmt: skip
        member._connect = connect  # type: ignore[method-assign]
        member._join = join  # type: ignore[method-assign]
        assert not await member.start()
    assert counters.errors == {"connect: closed: 1013 unavailable": 1, "join: error unavailable": 1}
    assert (counters.attempted, counters.failed, counters.connected) == (2, 2, 0)
