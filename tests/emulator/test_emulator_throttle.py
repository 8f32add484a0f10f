"""Token buckets (pure, fake time)."""

import pytest

from chatload.emulator.throttle import BucketSet, TokenBucket


def offer(bucket: TokenBucket, rate: float, seconds: float, start: float = 0.0) -> int:
    """Offer `rate` attempts per second for `seconds`, evenly spaced; count the admitted ones."""
    n = int(rate * seconds)
    return sum(bucket.take(start + i / rate) for i in range(n))


def test_offering_20_per_s_for_10_s_against_5_per_s_burst_8_accepts_8_plus_50():
    bucket = TokenBucket.full(rate=5, burst=8, now=0.0)
    accepted = offer(bucket, 20, 10)
    assert abs(accepted - (8 + 5 * 10)) <= 1


@pytest.mark.parametrize(("rate", "burst", "offered", "seconds"), [(5, 8, 20, 10), (10, 15, 50, 4), (2, 5, 3, 30)])
def test_admitted_is_burst_plus_rate_times_time_when_overloaded(rate, burst, offered, seconds):
    bucket = TokenBucket.full(rate, burst, 0.0)
    assert abs(offer(bucket, offered, seconds) - (burst + rate * seconds)) <= 1


def test_under_the_rate_everything_is_admitted():
    bucket = TokenBucket.full(5, 8, 0.0)
    assert offer(bucket, 4, 20) == 80


def test_bucket_starts_full_and_discards_surplus():
    bucket = TokenBucket.full(5, 8, 0.0)
    assert sum(bucket.take(0.0) for _ in range(20)) == 8
    # an hour idle refills to burst, never more
    assert sum(bucket.take(3600.0) for _ in range(20)) == 8


def test_refill_is_continuous():
    bucket = TokenBucket.full(5, 1, 0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.1)  # 0.5 token
    assert bucket.take(0.2)  # 1.0 token


def test_reconfigure_keeps_the_current_level_capped_at_the_new_burst():
    bucket = TokenBucket.full(5, 8, 0.0)
    for _ in range(6):
        bucket.take(0.0)
    bucket.reconfigure(100, 50, 0.0)
    assert bucket.level(0.0) == pytest.approx(2.0)
    assert bucket.level(1.0) == pytest.approx(50.0)
    bucket.reconfigure(1, 1, 1.0)
    assert bucket.level(1.0) == pytest.approx(1.0)


def test_bucket_set_keys_are_independent_and_follow_new_limits():
    buckets = BucketSet.empty()
    assert sum(buckets.take(("a",), 1, 2, 0.0) for _ in range(5)) == 2
    assert sum(buckets.take(("b",), 1, 2, 0.0) for _ in range(5)) == 2
    # a raised limit applies at the current level (0 tokens) and refills at the new rate
    assert not buckets.take(("a",), 10, 10, 0.0)
    assert sum(buckets.take(("a",), 10, 10, 1.0) for _ in range(20)) == 10
    buckets.clear()
    assert buckets.take(("a",), 1, 2, 1.0)
