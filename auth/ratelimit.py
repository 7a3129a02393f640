"""Counts events per key in a sliding window to throttle logins and connection attempts."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimiter", "TokenBucket", "InboundLimit"]


class RateLimiter:
    """Allows at most `limit` hits per key within `window` seconds (in-memory, one node)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        self.limit = limit
        # For metrics: which limiter this is, and how many attempts it has refused.
        self.name = name
        self.rejected = 0
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def _live(self, key: str) -> deque[float]:
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
        return hits

    def retry_after(self, key: str) -> int:
        """Returns seconds until key may try again, or 0 if it is under the limit now."""
        hits = self._live(key)
        if len(hits) < self.limit:
            return 0
        return max(1, math.ceil(hits[0] + self.window - self._clock()))

    def count(self, key: str) -> int:
        """Returns how many hits key has within the window."""
        return len(self._live(key))

    def hit(self, key: str) -> None:
        """Records one hit for key."""
        self._live(key)
        self._hits.setdefault(key, deque()).append(self._clock())
        if len(self._hits) > 100_000:  # bound memory under a flood of distinct keys
            self._prune()

    def check_and_hit(self, key: str) -> int:
        """Records a hit unless key is over the limit; returns the retry-after (0 = allowed)."""
        wait = self.retry_after(key)
        if wait:
            self.rejected += 1
        else:
            self.hit(key)
        return wait

    def reset(self, key: str) -> None:
        """Forgets every hit of key (after a successful login)."""
        self._hits.pop(key, None)

    def _prune(self) -> None:
        for key in list(self._hits):
            self._live(key)

    # Awaitable twins of the methods above, which is what the services and handlers call:
    # auth.sharedlimit.SharedRateLimiter answers them from Redis for the whole cluster.

    async def acheck_and_hit(self, key: str) -> int:
        """check_and_hit(key), awaitable."""
        return self.check_and_hit(key)

    async def aretry_after(self, key: str) -> int:
        """retry_after(key), awaitable."""
        return self.retry_after(key)

    async def acount(self, key: str) -> int:
        """count(key), awaitable."""
        return self.count(key)

    async def ahit(self, key: str) -> None:
        """hit(key), awaitable."""
        self.hit(key)

    async def areset(self, key: str) -> None:
        """reset(key), awaitable."""
        self.reset(key)


class TokenBucket:
    """Allows `rate` events per second on average and bursts of up to `burst` (one client)."""

    __slots__ = ("rate", "burst", "_tokens", "_at", "_clock")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def take(self) -> bool:
        """Spends one token if there is one; False means the event is over the rate."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class InboundLimit:
    """One connection's inbound budget: a token bucket, plus abuse detection.

    Abuse is sending more than `abuse_factor` times the rate, counted over `window` seconds:
    such a client is closed rather than answered message by message.
    """

    __slots__ = ("bucket", "_limit", "_window", "_start", "_count", "_clock")

    def __init__(
        self, rate: float, burst: float, abuse_factor: float = 3.0, window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = TokenBucket(rate, burst, clock)
        self._limit = abuse_factor * rate * window
        self._window = window
        self._clock = clock
        self._start = clock()
        self._count = 0

    def check(self) -> str:
        """Counts one message; returns "ok", "limited" (over the rate) or "abuse"."""
        now = self._clock()
        if now - self._start >= self._window:
            self._start, self._count = now, 0
        self._count += 1
        if self._count > self._limit:
            return "abuse"
        return "ok" if self.bucket.take() else "limited"
