"""RateLimiter with an injected clock: bursts, refills, several limits, memory bound, and the
FCM defaults checked against FCM's documented per-device windows."""

from __future__ import annotations

import pytest

from push.ratelimit import FCM_COLLAPSIBLE_LIMITS, FCM_DEVICE_LIMITS, Limit, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_wait_for_the_refill() -> None:
    clock = Clock()
    limiter = RateLimiter([Limit(3, 3.0)], clock=clock)

    assert [limiter.acquire("dev") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("dev") == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.acquire("dev") == pytest.approx(0.5)  # a refused try takes nothing
    clock.now += 0.5
    assert limiter.acquire("dev") == 0.0
    assert limiter.acquire("dev") == pytest.approx(1.0)


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter([Limit(1, 10.0)], clock=Clock())

    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("a") == pytest.approx(10.0)
    assert len(limiter) == 2


def test_the_tightest_limit_decides_the_wait() -> None:
    clock = Clock()
    limiter = RateLimiter([Limit(2, 1.0), Limit(3, 30.0)], clock=clock)

    assert [limiter.acquire("d") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("d") == pytest.approx(0.5)  # the short bucket is empty
    clock.now += 0.5
    assert limiter.acquire("d") == 0.0  # the long bucket's last token
    clock.now += 1.0
    assert limiter.acquire("d") == pytest.approx(10.0 - 1.5)  # the long bucket: 1 per 10 s


def test_cost_larger_than_a_bucket_is_refused() -> None:
    limiter = RateLimiter([Limit(5, 1.0)], clock=Clock())

    with pytest.raises(ValueError, match="exceeds"):
        limiter.acquire("d", cost=6)
    assert limiter.acquire("d", cost=5) == 0.0


def test_full_buckets_are_forgotten_beyond_max_keys() -> None:
    clock = Clock()
    limiter = RateLimiter([Limit(1, 1.0)], clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        limiter.acquire(key)
    clock.now += 0.5
    limiter.acquire("d")
    assert len(limiter) == 4  # nobody is full yet: nothing can be dropped
    clock.now += 0.6
    limiter.acquire("e")

    assert len(limiter) == 2  # a, b, c were full again; d (half) and e (empty) stay
    assert limiter.acquire("d") == pytest.approx(0.4)


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        Limit(0, 1.0)
    with pytest.raises(ValueError, match="at least one"):
        RateLimiter([])


def _max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_fcm_device_defaults_never_exceed_fcms_documented_windows() -> None:
    # A relay sending to one phone as fast as the limiter lets it, for two hours.
    clock = Clock()
    limiter = RateLimiter(FCM_DEVICE_LIMITS, clock=clock)
    sent: list[float] = []
    end = clock.now + 2 * 3600
    while clock.now < end:
        wait = limiter.acquire("phone")
        if wait:
            clock.now += wait
        else:
            sent.append(clock.now)

    assert _max_in_window(sent, 60.0) <= 240
    assert _max_in_window(sent, 3600.0) <= 5000
    assert len(sent) > 2 * 2500  # it is a ceiling, not a trickle: ~0.7 messages/s sustained


def test_fcm_collapsible_defaults_match_fcms_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(FCM_COLLAPSIBLE_LIMITS, clock=clock)

    assert all(limiter.acquire("phone:sync") == 0.0 for _ in range(20))
    assert limiter.acquire("phone:sync") == pytest.approx(180.0)
