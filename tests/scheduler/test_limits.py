"""The token bucket and the retry policy, with a fake clock and a seeded random source."""

from __future__ import annotations

import random

import pytest

from scheduler.limits import DEFAULT_LIMITS, ChannelLimits, RetryPolicy, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_paces_after_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, capacity=3.0, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)  # reservations queue up
    clock.now += 0.2  # both reserved tokens have been used by now
    assert bucket.reserve() == pytest.approx(0.1)
    clock.now += 60  # idle: the bucket refills to its capacity, not beyond
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() > 0


def test_a_pause_keeps_one_token_and_stops_refilling() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, capacity=5.0, clock=clock)
    bucket.hold(until=clock.now + 1.0)  # a 429 with retry_after 1
    # The first request at the end of the pause, then the steady rate (no burst).
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([1.0, 1.1, 1.2])
    clock.now += 30
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5  # idle afterwards: full again


def test_reservations_made_before_a_pause_are_paid_off_by_its_end() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, capacity=2.0, clock=clock)
    assert [bucket.reserve() for _ in range(5)] == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])
    bucket.hold(until=clock.now + 1.0)  # the last three were refunded or used meanwhile
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([1.0, 1.1, 1.2])
    # A pause shorter than the debt leaves the rest of it.
    bucket = TokenBucket(rate=10.0, capacity=1.0, clock=clock)
    assert [bucket.reserve() for _ in range(6)] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    bucket.hold(until=clock.now + 0.2)
    assert bucket.reserve() == pytest.approx(0.6)


def test_requests_in_any_window_are_bounded() -> None:
    """Starting each request when its reservation says: at most burst + rate * t in t s."""
    clock = FakeClock()
    bucket = TokenBucket(rate=25.0, capacity=1.0, clock=clock)
    starts = []
    for _ in range(200):
        wait = bucket.reserve()
        clock.now += wait
        starts.append(clock.now)
        clock.now += 0.001
    window = [t for t in starts if starts[50] <= t < starts[50] + 1.0]
    assert len(window) <= 25 + 1


def test_limits_defaults_and_validation() -> None:
    telegram = DEFAULT_LIMITS["telegram"]
    assert (telegram.rate, telegram.per_chat_interval) == (25.0, 1.0)
    assert telegram.capacity == 1.25
    assert ChannelLimits(rate=1000).capacity == 50
    assert ChannelLimits(rate=5).capacity == 1
    for bad in ({"rate": 0}, {"per_chat_interval": -1}, {"burst": 0.5}, {"max_in_flight": 0}):
        with pytest.raises(ValueError):
            ChannelLimits(**bad)


def test_retry_backoff_is_exponential_bounded_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=8, base_delay=5.0, max_delay=600.0, jitter=0.5)
    rng = random.Random(7)
    for failures, full in [(1, 5), (2, 10), (3, 20), (4, 40), (7, 320), (8, 600), (40, 600)]:
        delays = [policy.delay(failures, rng) for _ in range(200)]
        assert all(full * 0.5 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full * 0.3  # spread out, not synchronised
    exact = RetryPolicy(base_delay=1.0, jitter=0.0)
    assert [exact.delay(n, rng) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


def test_an_unused_reservation_is_given_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, capacity=1.0, clock=clock)
    assert bucket.reserve() == 0.0
    bucket.refund()  # its request did not start (the channel was paused meanwhile)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.1)


def test_a_reservation_given_back_during_a_pause_makes_no_burst_after_it() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, capacity=5.0, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    bucket.hold(until=clock.now + 1.0)
    for _ in range(3):  # the three requests were put back: a 429 came first
        bucket.refund()
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([1.0, 1.1, 1.2])
