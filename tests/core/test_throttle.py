"""Sign-in throttling: five free failures, then waits of 1 s, 2 s, 4 s ... up to 15 min; bounded memory."""

from __future__ import annotations

import pytest

from chat.core.throttle import FORGET_S, MAX_DELAY_S, Throttle, account_key, address_key
from tests.support import VirtualClock

KEYS = [account_key("alice"), address_key("10.0.0.1")]


def fail(throttle: Throttle, times: int, keys: list[str] = KEYS) -> None:
    for _ in range(times):
        assert throttle.retry_after(keys) == 0
        throttle.failed(keys)


def test_five_failures_are_free_then_the_waits_double():
    clock = VirtualClock()
    throttle = Throttle(clock)
    fail(throttle, 5)
    waits = []
    for _ in range(5):
        wait = throttle.retry_after(KEYS)
        waits.append(wait)
        clock.advance(wait)
        assert throttle.retry_after(KEYS) == 0
        throttle.failed(KEYS)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_the_wait_is_capped_at_fifteen_minutes():
    clock = VirtualClock()
    throttle = Throttle(clock)
    fail(throttle, 5)
    for _ in range(20):
        clock.advance(throttle.retry_after(KEYS))
        throttle.failed(KEYS)
    assert throttle.retry_after(KEYS) == MAX_DELAY_S


def test_the_wait_counts_from_the_last_failure():
    clock = VirtualClock()
    throttle = Throttle(clock)
    fail(throttle, 5)
    clock.advance(1.0)
    throttle.failed(KEYS)  # the sixth failure: 2 s now
    clock.advance(0.5)
    assert throttle.retry_after(KEYS) == pytest.approx(1.5)


def test_either_key_throttles_an_attempt():
    clock = VirtualClock()
    throttle = Throttle(clock)
    # One address guessing many names: the address key holds them all back.
    for n in range(6):
        throttle.failed([account_key(f"user{n}"), address_key("10.0.0.9")])
    assert throttle.retry_after([account_key("someone-new"), address_key("10.0.0.9")]) > 0
    assert throttle.retry_after([account_key("someone-new"), address_key("10.0.0.10")]) == 0
    # Many addresses guessing one name: the account key holds them back.
    for n in range(6):
        throttle.failed([account_key("bob"), address_key(f"10.1.0.{n}")])
    assert throttle.retry_after([account_key("bob"), address_key("10.2.0.1")]) > 0


def test_a_success_clears_the_account_but_not_the_address():
    clock = VirtualClock()
    throttle = Throttle(clock)
    fail(throttle, 5)
    throttle.succeeded(account_key("alice"))
    assert throttle.retry_after([account_key("alice")]) == 0
    assert throttle.retry_after([address_key("10.0.0.1")]) > 0


def test_entries_are_forgotten_once_quiet_past_their_wait():
    clock = VirtualClock()
    throttle = Throttle(clock)
    fail(throttle, 3, [account_key("carol")])
    fail(throttle, 5)
    assert len(throttle) == 3
    clock.advance(FORGET_S + 1.0)  # past the wait (1 s) and the quiet period
    assert throttle.retry_after(KEYS) == 0
    assert len(throttle) == 0
    # And the count starts over: five free failures again.
    fail(throttle, 5)


def test_the_table_is_capped_evicting_the_oldest():
    clock = VirtualClock()
    throttle = Throttle(clock, max_entries=10)
    for n in range(25):
        throttle.failed([address_key(f"10.0.0.{n}")])
    assert len(throttle) == 10
