"""Token buckets per key (a device token, a phone number) so the relay stays under a provider's
per-recipient limits instead of learning them from errors.

FCM documents its per-device limits in "FCM Throttling and Quotas"
(https://firebase.google.com/docs/cloud-messaging/throttling-and-quotas):

- "Maximum message rate to a single device": on Android up to 240 messages per minute and
  5,000 per hour to one device — a high ceiling meant for short bursts (a sustained rate of
  about 1.4 messages/s); on iOS FCM returns an error when APNs' limits are exceeded.
- "Collapsible message throttling": collapsible messages are throttled to a burst of 20 per app
  per device, refilled by one every 3 minutes (FCM delays rather than refuses them).

A bucket holding C tokens and refilling C per T seconds can pass up to 2C in a window of T (a
full bucket, then a full refill), so `FCM_DEVICE_LIMITS` uses half of each documented figure:
whatever the timing, no window sees more than FCM allows. `FCM_COLLAPSIBLE_LIMITS` is FCM's own
bucket (burst 20, one every 180 s); key it by device and collapse key.

Usage in the relay::

    limiter = RateLimiter(FCM_DEVICE_LIMITS)
    wait = limiter.acquire(device_token)
    if wait: reschedule the message `wait` seconds later (nothing was taken)
    else: send it

Not thread-safe: use one limiter per event loop (or guard it with a lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """A bucket of `count` tokens that refills completely in `per` seconds."""

    count: int
    per: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.per <= 0:
            raise ValueError("a limit needs count >= 1 and per > 0")

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.count / self.per


# Float refills land a hair short of whole tokens: after waiting the time we named, let it pass.
_EPSILON = 1e-9

FCM_DEVICE_LIMITS = (Limit(120, 60.0), Limit(2500, 3600.0))
FCM_COLLAPSIBLE_LIMITS = (Limit(20, 20 * 180.0),)


class RateLimiter:
    """Token buckets for every key under the same `limits`."""

    def __init__(
        self,
        limits: Sequence[Limit],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        """`clock` returns seconds (monotonic); keys whose buckets are full again are forgotten
        once more than `max_keys` are held (a full bucket is the same as a new one)."""
        if not limits:
            raise ValueError("at least one limit")
        self._limits = tuple(limits)
        self._clock = clock
        self._max_keys = max_keys
        # key -> (tokens per limit, time of the last update)
        self._buckets: dict[str, tuple[list[float], float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str, cost: int = 1) -> float:
        """Take `cost` tokens for `key` and return 0.0, or take nothing and return the seconds
        until `cost` tokens will be there."""
        if any(cost > limit.count for limit in self._limits):
            raise ValueError(f"cost {cost} exceeds a bucket's size")
        now = self._clock()
        tokens = self._refilled(key, now)
        wait = max(
            (cost - have) / limit.rate for have, limit in zip(tokens, self._limits, strict=True)
        )
        if wait > _EPSILON:
            self._buckets[key] = (tokens, now)
            return wait
        self._buckets[key] = ([have - cost for have in tokens], now)
        if len(self._buckets) > self._max_keys:
            self._forget_full(now)
        return 0.0

    def _refilled(self, key: str, now: float) -> list[float]:
        state = self._buckets.get(key)
        if state is None:
            return [float(limit.count) for limit in self._limits]
        tokens, then = state
        elapsed = max(now - then, 0.0)
        return [
            min(float(limit.count), have + elapsed * limit.rate)
            for have, limit in zip(tokens, self._limits, strict=True)
        ]

    def _forget_full(self, now: float) -> None:
        for key in list(self._buckets):
            refilled = self._refilled(key, now)
            if all(have >= limit.count for have, limit in zip(refilled, self._limits, strict=True)):
                del self._buckets[key]
