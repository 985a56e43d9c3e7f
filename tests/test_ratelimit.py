from chat.ratelimit import FLOOD_WINDOW_S, FrameLimiter, TokenBucket, Verdict


def test_bucket_allows_burst_then_refills_at_rate():
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1)  # one token back after 1/rate seconds
    assert not bucket.take(0.1)


def test_limiter_drops_frames_over_the_rate():
    limiter = FrameLimiter(rate=20, burst=40)
    verdicts = [limiter.check(0.0) for _ in range(41)]
    assert verdicts[:40] == [Verdict.ALLOW] * 40
    assert verdicts[40] is Verdict.LIMIT


def test_limiter_disabled_with_rate_zero():
    limiter = FrameLimiter(rate=0, burst=0)
    assert all(limiter.check(0.0) is Verdict.ALLOW for _ in range(10_000))


def flood(limiter: FrameLimiter, per_second: int, seconds: float, start: float = 0.0) -> list[Verdict]:
    step = 1.0 / per_second
    return [limiter.check(start + i * step) for i in range(int(per_second * seconds))]


def test_sustained_flood_at_five_times_the_rate_is_closed_after_the_window():
    limiter = FrameLimiter(rate=20, burst=40)
    verdicts = flood(limiter, per_second=120, seconds=FLOOD_WINDOW_S + 1)
    first_close = verdicts.index(Verdict.CLOSE)
    assert first_close / 120 >= FLOOD_WINDOW_S - 0.5  # never before the window is over
    assert Verdict.LIMIT in verdicts[:first_close]


def test_moderate_overrate_is_limited_but_not_closed():
    limiter = FrameLimiter(rate=20, burst=40)
    verdicts = flood(limiter, per_second=60, seconds=3 * FLOOD_WINDOW_S)
    assert Verdict.LIMIT in verdicts
    assert Verdict.CLOSE not in verdicts


def test_calming_down_resets_the_flood_clock():
    limiter = FrameLimiter(rate=20, burst=40)
    flood(limiter, per_second=200, seconds=FLOOD_WINDOW_S - 2)
    # Quiet for long enough that the bucket is full again...
    assert limiter.check(FLOOD_WINDOW_S + 10) is Verdict.ALLOW
    # ...so a new short burst is limited, not closed.
    verdicts = flood(limiter, per_second=200, seconds=3, start=FLOOD_WINDOW_S + 11)
    assert Verdict.CLOSE not in verdicts
