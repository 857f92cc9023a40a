"""ztp.gateway._limits: token buckets with an injected clock."""

import pytest
from ztp.gateway import RateLimit, RateLimiter


def test_burst_then_refill():
    lim = RateLimiter(RateLimit(per_second=1.0, burst=3))
    assert [lim.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert lim.retry_after("a", 0.0) == pytest.approx(1.0)
    assert lim.allow("b", 0.0)  # keys are independent
    assert not lim.allow("a", 0.5)
    assert lim.allow("a", 1.6)


def test_refused_attempts_do_not_extend_the_wait():
    lim = RateLimiter(RateLimit(per_second=1.0, burst=1))
    assert lim.allow("a", 0.0)
    for t in (0.1, 0.2, 0.3):
        assert not lim.allow("a", t)
    assert lim.allow("a", 1.0)


def test_clock_stepping_back_mints_nothing():
    lim = RateLimiter(RateLimit(per_second=1.0, burst=1))
    assert lim.allow("a", 100.0)
    assert not lim.allow("a", 50.0)


def test_key_table_bounded():
    lim = RateLimiter(RateLimit(per_second=1.0, burst=1), max_keys=10)
    for i in range(1000):
        lim.allow(i, 0.0)
    assert len(lim) == 10


def test_per_minute_and_validation():
    assert RateLimit.per_minute(6) == RateLimit(0.1, 6)
    with pytest.raises(ValueError):
        RateLimit(0, 1)
    with pytest.raises(ValueError):
        RateLimit(1, 0)
