"""How late the event loop runs what it was asked to run: a timer that measures its own delay.

Every `interval` seconds a callback is due; the time between when it was due and when it ran is
the lag every other callback (a delivery, a handshake) was waiting too. The largest lag since
the last read is kept for /metrics, so a scrape sees the worst moment of its interval.
"""

from __future__ import annotations

from tornado.ioloop import IOLoop

__all__ = ["LoopLag"]

INTERVAL = 0.25  # seconds between measurements


class LoopLag:
    """Measures the IOLoop's lag on one repeating timer."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.last = 0.0  # the latest measured lag, seconds
        self.worst = 0.0  # the largest lag since read_worst()
        self._due = 0.0
        self._handle: object | None = None

    def start(self) -> None:
        """Starts measuring."""
        loop = IOLoop.current()
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        """Stops measuring."""
        if self._handle is not None:
            IOLoop.current().remove_timeout(self._handle)
            self._handle = None

    def _tick(self) -> None:
        loop = IOLoop.current()
        now = loop.time()
        self.last = max(0.0, now - self._due)
        self.worst = max(self.worst, self.last)
        self._due = now + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def read_worst(self) -> float:
        """Returns the largest lag since the previous call, and starts a new interval."""
        worst, self.worst = self.worst, self.last
        return worst
