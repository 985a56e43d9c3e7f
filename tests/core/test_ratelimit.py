"""The rate limit and the flood rule, on a fake clock: frames over the rate wait, in order; floods are closed."""

import itertools
import math
import random

from chat.core.ratelimit import FLOOD_WINDOW_S, FrameLimiter, TokenBucket, Verdict


def test_bucket_allows_burst_then_refills_at_rate():
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1)  # one token back after 1/rate seconds
    assert not bucket.take(0.1)


def test_a_reserved_token_is_owed_and_its_wait_is_computed_from_the_bucket():
    bucket = TokenBucket(rate=10, burst=2)
    assert [bucket.reserve(0.0) for _ in range(2)] == [0.0, 0.0]
    assert math.isclose(bucket.reserve(0.0), 0.1)  # the next token exists in 1/rate s
    assert math.isclose(bucket.reserve(0.0), 0.2)  # and the one after that in 2/rate s
    assert bucket.reserve(0.3) == 0.0  # the debt is paid by then
    assert bucket.refill(0.3) == 0.0


def read_paced(limiter: FrameLimiter, arrivals: list[float], late: float = 0.0) -> tuple[list[float], float | None]:
    """Feed frames that arrive at ``arrivals`` to ``limiter`` as the server
    does: a frame is read once it has arrived and the frame before it is
    handled. A wait ends ``late`` seconds late (a busy event loop). Returns
    when each frame was handled, and when the connection was closed (None if
    it was not)."""
    handled: list[float] = []
    free = -math.inf  # when the reader can take the next frame
    for arrived in arrivals:
        now = max(arrived, free)
        verdict = limiter.check(now)
        if verdict is Verdict.CLOSE:
            return handled, now
        free = now + (limiter.wait + late if verdict is Verdict.WAIT else 0.0)
        handled.append(free)
    return handled, None


def test_frames_over_the_rate_wait_for_their_token_in_order_and_none_is_dropped():
    limiter = FrameLimiter(rate=20, burst=40)
    handled, closed = read_paced(limiter, [0.0] * 120)  # 120 frames at once
    assert closed is None
    assert len(handled) == 120
    assert handled[:40] == [0.0] * 40  # the burst at once
    # ... then one every 1/rate seconds, in arrival order.
    assert all(math.isclose(b - a, 0.05) for a, b in itertools.pairwise(handled[40:]))
    assert math.isclose(handled[-1], 80 / 20)


def test_the_verdicts_say_when_to_wait_and_how_long():
    limiter = FrameLimiter(rate=20, burst=2)
    assert [limiter.check(0.0) for _ in range(2)] == [Verdict.ALLOW, Verdict.ALLOW]
    assert limiter.check(0.0) is Verdict.WAIT
    assert math.isclose(limiter.wait, 0.05)
    assert limiter.check(0.05 + 1.0) is Verdict.ALLOW  # quiet for a second: tokens again


def test_limiter_disabled_with_rate_zero():
    limiter = FrameLimiter(rate=0, burst=0)
    assert all(limiter.check(0.0) is Verdict.ALLOW for _ in range(10_000))


def steady(per_second: float, seconds: float, start: float = 0.0) -> list[float]:
    return [start + i / per_second for i in range(int(per_second * seconds))]


def test_a_sustained_flood_is_closed_once_it_has_been_behind_for_the_window():
    limiter = FrameLimiter(rate=20, burst=40)
    handled, closed = read_paced(limiter, steady(per_second=200, seconds=3 * FLOOD_WINDOW_S))
    assert closed is not None
    # Behind from the first frame past the burst (at 40/200 = 0.2 s), closed a window later: never before.
    assert closed >= 0.2 + FLOOD_WINDOW_S
    assert closed < 0.2 + FLOOD_WINDOW_S + 0.1
    assert len(handled) >= 40 + FLOOD_WINDOW_S * 20 - 1  # every frame up to then was handled


def test_a_flood_is_closed_even_when_a_busy_loop_wakes_up_late_from_every_wait():
    # Each wait ends 60 ms late: the next frame finds more than a token, yet
    # the sender has not caught up.
    limiter = FrameLimiter(rate=20, burst=40)
    _, closed = read_paced(limiter, [0.0] * 2000, late=0.06)
    assert closed is not None
    assert math.isclose(closed, FLOOD_WINDOW_S, abs_tol=0.2)


def test_a_sender_a_little_over_the_rate_is_closed_too_once_its_burst_is_spent():
    limiter = FrameLimiter(rate=20, burst=40)
    _, closed = read_paced(limiter, steady(per_second=25, seconds=60))
    # The burst covers the extra 5 frames a second for 8 s; then it is behind for good.
    assert closed is not None
    assert 8 + FLOOD_WINDOW_S - 0.5 <= closed <= 8 + FLOOD_WINDOW_S + 0.5


def test_a_reconnect_replaying_300_frames_at_once_is_never_closed():
    limiter = FrameLimiter(rate=20, burst=40)
    handled, closed = read_paced(limiter, [0.0] * 300)
    assert closed is None
    assert len(handled) == 300
    assert handled == sorted(handled)


def test_a_sender_at_the_rate_with_jitter_is_never_behind():
    # After spending its burst, it sends on a 20/s grid; the network delays
    # each frame by up to a third of the interval.
    limiter = FrameLimiter(rate=20, burst=40)
    rng = random.Random(9)
    arrivals = [0.0] * 40 + [t + rng.uniform(0, 0.05 / 3) for t in steady(per_second=20, seconds=60, start=0.05)]
    _, closed = read_paced(limiter, arrivals)
    assert closed is None
    assert limiter.behind_since is None


def test_calming_down_resets_the_flood_clock():
    limiter = FrameLimiter(rate=20, burst=40)
    behind_for = FLOOD_WINDOW_S - 2
    flood = int(40 + 20 * behind_for)  # frames at once: behind for 2 s less than the window
    handled, closed = read_paced(limiter, [0.0] * flood)
    assert closed is None
    assert limiter.behind_since is not None
    # Quiet until the reader has caught up and a few tokens are back...
    pause = handled[-1] + 0.2
    assert limiter.check(pause) is Verdict.ALLOW
    assert limiter.behind_since is None
    # ... so a second flood as long gets a whole window again (4 tokens back only: no second burst).
    _, closed = read_paced(limiter, [pause + 0.001] * int(20 * behind_for))
    assert closed is None
    # Without the pause the two would have been one flood, and closed.
    _, closed = read_paced(FrameLimiter(rate=20, burst=40), [0.0] * (flood + int(20 * behind_for)))
    assert closed is not None


def test_the_window_is_the_limiters_own():
    limiter = FrameLimiter(rate=20, burst=40, window=1.0)
    _, closed = read_paced(limiter, [0.0] * 200)
    assert closed is not None
    assert math.isclose(closed, 1.0)  # behind from frame 41 (at 0 s), closed at frame 61
