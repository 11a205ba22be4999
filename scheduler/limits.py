"""Per-channel delivery limits, the token bucket that enforces them, and the retry policy."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_LIMITS",
    "FALLBACK_LIMITS",
    "ChannelLimits",
    "RetryPolicy",
    "TokenBucket",
]


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """How fast the sender may push on one channel.

    ``rate``: messages per second overall; ``burst``: how many may go back to back after an
    idle spell (default: 50 ms worth of ``rate``, at least 1), so in any window of ``t``
    seconds at most ``burst + rate * t`` requests start; ``per_chat_interval``: seconds
    between two messages to the same chat; ``max_in_flight``: deliveries whose outcome is
    not yet committed (this is also the most messages a ``kill -9`` can make go out twice).
    """

    rate: float = 25.0
    per_chat_interval: float = 1.0
    burst: float | None = None
    max_in_flight: int = 10

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.per_chat_interval < 0:
            raise ValueError("per_chat_interval must be >= 0")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be >= 1")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate / 20)


# Telegram: ~30 messages/s per bot and ~1/s per chat; we stay below both. Zalo publishes no
# figure; the same conservative default applies until configured.
DEFAULT_LIMITS: dict[str, ChannelLimits] = {
    "telegram": ChannelLimits(rate=25.0, per_chat_interval=1.0),
    "zalo": ChannelLimits(rate=10.0, per_chat_interval=1.0),
}
FALLBACK_LIMITS = ChannelLimits(rate=10.0, per_chat_interval=1.0)


class TokenBucket:
    """A token bucket in reservation style: :meth:`reserve` takes a token now and says how
    long to wait before using it (0 when one was available). One consumer per bucket."""

    def __init__(
        self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def hold(self, until: float) -> None:
        """Nothing may be sent before ``until`` (a 429 pause). The pause counts as time
        without requests, so reservations made before it are paid off by its end (no wait
        after it for them), but the bucket holds at most one token meanwhile: sending resumes
        at ``until`` at the steady rate, not in a burst."""
        now = self._clock()
        self._refill(now)
        if until > self._stamp:
            gained = (until - self._stamp) * self.rate
            self._tokens = min(1.0, self._tokens + gained)
            self._stamp = until
        else:
            self._tokens = min(self._tokens, 1.0)

    def refund(self) -> None:
        """Give back a reservation that was not used (its request did not start); during a
        pause the bucket still holds at most one token."""
        cap = 1.0 if self._stamp > self._clock() else self.capacity
        self._tokens = min(max(cap, self._tokens), self._tokens + 1.0)

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def reserve(self) -> float:
        now = self._clock()
        self._refill(now)
        self._tokens -= 1.0
        wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        return wait + max(0.0, self._stamp - now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential back-off with jitter for 5xx and network errors.

    After the ``n``-th failed attempt the next one waits ``min(max_delay, base_delay *
    2**(n-1))`` times a random factor in ``[1 - jitter, 1]``; after ``max_attempts`` failed
    attempts the message is given up (status ``failed``). Defaults: 5 s, 10 s, 20 s ... up to
    10 min, 8 attempts: a message is given up after roughly 5 to 10.5 minutes of failures.
    """

    max_attempts: int = 8
    base_delay: float = 5.0
    max_delay: float = 600.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def delay(self, failed_attempts: int, rng: random.Random) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure (1-based)."""
        exponent = max(0, failed_attempts - 1)
        raw = min(self.max_delay, self.base_delay * (2.0 ** min(exponent, 62)))
        return raw * (1.0 - self.jitter * rng.random())
