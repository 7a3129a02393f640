"""The one HTTP client every hook and webhook request goes through: keep-alive and signed.

httpx's AsyncClient keeps a pool of connections to the application open between requests
(no TCP handshake per hook call) and runs on the IOLoop's asyncio loop, so a request never
blocks it. The client reads nothing from the environment (no proxy variables): every option
comes from Settings. `Failures` logs why calls fail, once a minute per cause, not per call.
"""

from __future__ import annotations

import bisect
import logging
import time
from typing import Any

import httpx

from auth.signature import HEADER, sign

__all__ = ["HookClient", "Failures", "Buckets", "LATENCY_BUCKETS"]

# Seconds a permission hook takes: a local application answers in a millisecond or two.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HookClient:
    """Signs and POSTs JSON bodies over one pool of keep-alive connections."""

    def __init__(self, secret: str, connections: int) -> None:
        self.secret = secret
        self.connections = connections
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        """Returns the pool, made on first use (on the loop that serves)."""
        if self._client is None:
            limits = httpx.Limits(max_connections=self.connections,
                                  max_keepalive_connections=self.connections,
                                  keepalive_expiry=60.0)
            self._client = httpx.AsyncClient(limits=limits, trust_env=False,
                                             headers={"User-Agent": "events-server"})
        return self._client

    async def post(self, url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        """POSTs body with its signature; returns (status, response body). Raises
        httpx.HTTPError (httpx.TimeoutException after timeout seconds) when no answer came."""
        headers = {"Content-Type": "application/json", HEADER: sign(self.secret, body)}
        response = await self._http().post(url, content=body, headers=headers, timeout=timeout)
        return response.status_code, response.content

    async def close(self) -> None:
        """Closes every pooled connection."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class Failures:
    """Logs a failure the first time its cause is seen in a minute, with how many followed."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.log = logger
        self.interval = interval
        self._seen: dict[str, list[Any]] = {}  # cause -> [last logged (monotonic), since then]

    def __call__(self, cause: str, message: str, *args: Any) -> None:
        """Logs message (a warning) unless cause was logged less than a minute ago."""
        now = time.monotonic()
        seen = self._seen.get(cause)
        if seen is not None and now - seen[0] < self.interval:
            seen[1] += 1
            return
        quiet = seen[1] if seen is not None else 0
        self._seen[cause] = [now, 0]
        suffix = f" ({quiet} more since the last report)" if quiet else ""
        self.log.warning(message + "%s; the same cause is logged at most once a minute",
                         *args, suffix)


class Buckets:
    """A latency histogram as plain numbers (cumulative at scrape time, services/hookmetrics)."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Counts one observation in its bucket."""
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1
