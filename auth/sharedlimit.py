"""Rate limits shared by every node of a cluster: one sliding window per key in Redis.

Each check is one atomic Lua step over a sorted set of hit times (Redis's clock), so N nodes
together allow what one node allows. If Redis cannot answer, the node falls back to its own
in-memory window (still limited, per node) and says so in the log once per outage.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from auth.ratelimit import RateLimiter

__all__ = ["SharedRateLimiter", "REDIS_TIMEOUT_SECONDS", "RETRY_SECONDS"]

log = logging.getLogger("auth.ratelimit")

REDIS_TIMEOUT_SECONDS = 1.0
# After a failure, Redis is tried again only this much later: an outage costs one slow
# answer per limiter every few seconds, not one per request.
RETRY_SECONDS = 3.0

# KEYS: the key's sorted set. ARGV: limit, window ms, hit member, mode (hit: record and
# answer; check: answer; add: record only; count). Returns {hits in window, seconds to wait}.
_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, mode = tonumber(ARGV[2]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if mode == 'count' then return {n, 0} end
if mode ~= 'add' and n >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = math.ceil((tonumber(first[2]) + window - now) / 1000)
  if wait < 1 then wait = 1 end
  return {n, wait}
end
if mode == 'check' then return {n, 0} end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {n + 1, 0}
"""


class SharedRateLimiter(RateLimiter):
    """A RateLimiter whose awaitable methods count in Redis, for the whole cluster.

    The synchronous methods (inherited) are the node-local window, used as the fallback.
    """

    def __init__(
        self, limit: int, window: float, redis: Any, prefix: str, name: str,
        clock: Callable[[], float] = time.monotonic, timeout: float = REDIS_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(limit, window, clock=clock, name=name)
        self.redis = redis
        self.timeout = timeout
        self._prefix = f"{prefix}:ratelimit:"
        self._script = redis.register_script(_WINDOW)
        self._ids = itertools.count()
        self._node = uuid.uuid4().hex[:12]
        self.degraded = False
        self._retry_at = 0.0  # time.monotonic() before which Redis is not tried

    async def _run(self, key: str, mode: str) -> tuple[int, int] | None:
        """Runs one window step in Redis; None when Redis could not answer in time."""
        if self.degraded and time.monotonic() < self._retry_at:
            return None
        member = f"{self._node}:{next(self._ids)}"
        try:
            n, wait = await asyncio.wait_for(self._script(
                keys=[f"{self._prefix}{self.name}:{key}"],
                args=[self.limit, math.ceil(self.window * 1000), member, mode]), self.timeout)
        except Exception as exc:  # redis errors, OSError, timeouts: limit per node instead
            if not self.degraded:
                log.warning("rate limiter %s: Redis unavailable (%s: %s); limiting per node",
                            self.name, type(exc).__name__, exc)
            self.degraded = True
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return None
        if self.degraded:
            log.info("rate limiter %s: Redis is back; limiting cluster-wide", self.name)
        self.degraded = False
        return int(n), int(wait)

    async def acheck_and_hit(self, key: str) -> int:
        """Records a hit unless key is over the limit cluster-wide; returns the retry-after."""
        result = await self._run(key, "hit")
        if result is None:
            return self.check_and_hit(key)
        if result[1]:
            self.rejected += 1
        return result[1]

    async def aretry_after(self, key: str) -> int:
        """Returns seconds until key may try again anywhere, 0 if under the limit now."""
        result = await self._run(key, "check")
        return self.retry_after(key) if result is None else result[1]

    async def acount(self, key: str) -> int:
        """Returns key's hits within the window on every node."""
        result = await self._run(key, "count")
        return self.count(key) if result is None else result[0]

    async def ahit(self, key: str) -> None:
        """Records one hit for key, whatever the limit."""
        if await self._run(key, "add") is None:
            self.hit(key)

    async def areset(self, key: str) -> None:
        """Forgets key's hits on every node (and this node's local ones)."""
        self.reset(key)
        try:
            await asyncio.wait_for(self.redis.delete(f"{self._prefix}{self.name}:{key}"),
                                   self.timeout)
        except Exception as exc:
            log.warning("rate limiter %s: could not reset %r in Redis: %s", self.name, key, exc)
