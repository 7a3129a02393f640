"""The one HTTP client every hook and webhook request goes through: keep-alive and signed.

Tornado's CurlAsyncHTTPClient runs libcurl on the IOLoop (never blocking it) and keeps the
connections to the application open between requests (libcurl's connection cache), so a
hook call costs no TCP handshake. It was picked for its CPU per request: about 0.2-0.5 ms on
this project's 2-core box against 1.4-2.6 ms for httpx's AsyncClient (sequential and 20 at
once). It reads nothing from the environment (no proxy variables): every option comes from
Settings. `Failures` logs why calls fail, once a minute per cause, not per call.
"""

from __future__ import annotations

import bisect
import logging
import time
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest

from auth.signature import HEADER, sign

__all__ = ["HookClient", "HookTimeout", "HookRequestFailed", "Failures", "Buckets",
           "LATENCY_BUCKETS"]

# Seconds a permission hook takes: a local application answers in a millisecond or two.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CURLE_OPERATION_TIMEDOUT = 28
# libcurl's error numbers as a short, stable cause (the once-a-minute log's key).
_CURL_CAUSES = {6: "cannot resolve the host", 7: "connection refused",
                52: "empty reply", 55: "connection broken", 56: "connection broken"}


class HookTimeout(Exception):
    """No answer within the request's timeout."""


class HookRequestFailed(Exception):
    """No answer at all: the connection was refused or broke."""


def _no_proxy(curl: Any) -> None:
    """Keeps libcurl from taking a proxy from http_proxy and the like."""
    import pycurl

    curl.setopt(pycurl.NOPROXY, "*")


class HookClient:
    """Signs and POSTs JSON bodies over one pool of keep-alive connections."""

    def __init__(self, secret: str, connections: int) -> None:
        self.secret = secret
        self.connections = connections
        self._client: Any = None

    def _http(self) -> Any:
        """Returns the client, made on first use (on the IOLoop that serves)."""
        if self._client is None:
            try:
                from tornado.curl_httpclient import CurlAsyncHTTPClient
            except ImportError:  # pragma: no cover - it is in requirements.txt
                raise RuntimeError("hooks and webhooks need pycurl: "
                                   "pip install -r requirements.txt") from None
            self._client = CurlAsyncHTTPClient(force_instance=True,
                                               max_clients=self.connections)
        return self._client

    async def post(self, url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        """POSTs body with its signature; returns (status, response body). Raises HookTimeout
        after timeout seconds, HookRequestFailed when no answer came."""
        headers = {"Content-Type": "application/json", HEADER: sign(self.secret, body)}
        request = HTTPRequest(url, method="POST", body=body, headers=headers,
                              request_timeout=timeout, connect_timeout=timeout,
                              follow_redirects=False, user_agent="events-server",
                              prepare_curl_callback=_no_proxy)
        try:
            response = await self._http().fetch(request, raise_error=False)
        except HTTPClientError as exc:  # no HTTP answer (599): libcurl's error
            errno = getattr(exc, "errno", None)
            if errno == CURLE_OPERATION_TIMEDOUT:
                raise HookTimeout(str(exc)) from None
            raise HookRequestFailed(_CURL_CAUSES.get(errno, f"curl error {errno}")) from None
        return response.code, response.body or b""

    async def close(self) -> None:
        """Closes every pooled connection."""
        if self._client is not None:
            self._client.close()
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
