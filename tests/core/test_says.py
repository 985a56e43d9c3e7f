"""The say ledger: which refs are being stored or were stored, and who gets the acknowledgement."""

from __future__ import annotations

import asyncio

import pytest

from chat.core.idempotency import IdempotencyWindow, Sent
from chat.core.model import Message
from chat.core.says import SayLedger


def message(seq: int = 1, ref: str | None = "r1", session: str = "s1", ts: int = 5_000) -> Message:
    return Message("lobby", seq, "bob", "hi", ts, session, ref)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_an_unknown_ref_is_not_a_retry():
    assert not SayLedger[str]().seen("s1", "r1", now=5.0)


def test_a_ref_being_stored_is_a_retry_and_its_future_is_pending(loop):
    ledger: SayLedger[str] = SayLedger()
    future: asyncio.Future[Message] = loop.create_future()
    ledger.storing("s1", "r1", future, "peer")
    assert ledger.seen("s1", "r1", now=5.0)
    assert ledger.pending("s1", "r1") is future
    assert not ledger.seen("s2", "r1", now=5.0)  # refs are per session


def test_the_commit_hands_back_the_sender_once_and_remembers_where_it_was_stored(loop):
    ledger: SayLedger[str] = SayLedger()
    ledger.storing("s1", "r1", loop.create_future(), "peer")
    assert ledger.committed(message(seq=7)) == "peer"
    assert ledger.pending("s1", "r1") is None
    assert ledger.sent("s1", "r1", now=5.0) == Sent("lobby", 7, 5.0)
    assert ledger.seen("s1", "r1", now=5.0)
    assert ledger.committed(message(seq=7)) is None  # acknowledged once


def test_a_commit_from_another_process_is_remembered_without_a_sender():
    ledger: SayLedger[str] = SayLedger()
    assert ledger.committed(message(seq=3)) is None
    assert ledger.sent("s1", "r1", now=5.0) == Sent("lobby", 3, 5.0)


def test_a_message_without_a_ref_is_not_tracked():
    ledger: SayLedger[str] = SayLedger()
    assert ledger.committed(message(ref=None)) is None
    assert ledger.sent("s1", "", now=5.0) is None


def test_a_failed_say_is_forgotten_so_its_retry_is_stored_anew(loop):
    ledger: SayLedger[str] = SayLedger()
    ledger.storing("s1", "r1", loop.create_future(), "peer")
    ledger.failed("s1", "r1")
    assert not ledger.seen("s1", "r1", now=5.0)
    assert ledger.committed(message()) is None  # nobody is waiting for it any more


def test_a_duplicate_remembers_the_original_under_the_retry_ref():
    ledger: SayLedger[str] = SayLedger()
    ledger.duplicate("r9", message(seq=4, ref="r9", session="s1"))
    assert ledger.sent("s1", "r9", now=5.0) == Sent("lobby", 4, 5.0)


def test_restored_history_makes_old_refs_retries_until_the_window_passes():
    ledger: SayLedger[str] = SayLedger(IdempotencyWindow(window_s=60.0))
    ledger.restore([message(seq=1, ref="r1"), message(seq=2, ref=None)])
    assert ledger.seen("s1", "r1", now=5.0 + 59.0)
    assert not ledger.seen("s1", "r1", now=5.0 + 60.0)
