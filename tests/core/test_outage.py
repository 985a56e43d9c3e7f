"""Store outage bookkeeping: one log line per outage, reminders, and when health says degraded."""

from __future__ import annotations

import logging

import pytest

from chat.core.outage import DEGRADED_AFTER_REFUSAL_S, OUTAGE_LOG_EVERY_S, StoreOutage
from tests.support import VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]


def test_no_outage_until_the_store_refuses(clock):
    outage = StoreOutage(clock)
    assert not outage.active
    assert not outage.degraded()
    assert outage.refused_count == 0


def test_the_first_refusal_is_logged_once_and_later_ones_only_as_reminders(clock, caplog):
    outage = StoreOutage(clock)
    for _ in range(5):
        outage.refused(OSError("disk full"))
        clock.advance(1.0)
    assert errors(caplog) == ["history store unavailable: disk full"]
    clock.advance(OUTAGE_LOG_EVERY_S)
    outage.refused(OSError("disk full"))
    assert errors(caplog)[1:] == ["history store still unavailable (6 messages refused so far): disk full"]
    assert outage.refused_count == 6


def test_refusals_are_logged_as_the_service(clock, caplog):
    StoreOutage(clock).refused(OSError("x"))
    assert [r.name for r in caplog.records] == ["chat.core.service"]


def test_degraded_while_refusals_are_recent_even_without_a_commit(clock):
    outage = StoreOutage(clock)
    outage.refused(OSError("x"))
    assert outage.degraded()
    clock.advance(DEGRADED_AFTER_REFUSAL_S - 0.1)
    assert outage.degraded()
    clock.advance(0.2)
    assert not outage.degraded()
    assert outage.active  # quiet, not known to work again


def test_a_commit_ends_the_outage_with_one_warning_that_counts_the_refusals(clock, caplog):
    outage = StoreOutage(clock)
    outage.refused(OSError("x"))
    outage.refused(OSError("x"))
    clock.advance(2.5)
    caplog.clear()
    outage.recovered()
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "history store works again after 2.5 s; 2 messages were refused")
    ]
    assert not outage.active
    assert not outage.degraded()
    assert outage.refused_count == 0


def test_a_commit_without_an_outage_logs_nothing(clock, caplog):
    StoreOutage(clock).recovered()
    assert caplog.records == []


def test_a_new_outage_after_recovery_is_logged_again(clock, caplog):
    outage = StoreOutage(clock)
    outage.refused(OSError("first"))
    outage.recovered()
    outage.refused(OSError("second"))
    assert errors(caplog) == ["history store unavailable: first", "history store unavailable: second"]
