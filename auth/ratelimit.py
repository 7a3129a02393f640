"""Counts events per key in a sliding window to throttle logins and connection attempts."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimiter"]


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
