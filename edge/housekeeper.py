"""Gives closed connections' memory back: a full collection and malloc_trim after churn."""

from __future__ import annotations

import gc
from typing import Any

from tornado.ioloop import PeriodicCallback

from edge.server import EdgeServer

__all__ = ["Housekeeper"]


def _malloc_trim() -> Any:
    """Returns glibc's malloc_trim, or None where it does not exist."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class Housekeeper:
    """Collects closed connections' garbage and gives freed heap back to the OS after churn.

    tune_gc() makes full collections rare, so the reference cycles of closed sockets would
    otherwise wait in the oldest generation for a long time. Every `interval` seconds, if at
    least `threshold` sockets closed since the last run, this runs a full collection and
    glibc's malloc_trim(0). With no churn it costs nothing.
    """

    def __init__(self, server: EdgeServer, interval: float = 5.0, threshold: int = 50) -> None:
        self.server, self.interval, self.threshold = server, interval, threshold
        self._seen = 0
        self._timer: Any = None
        self._trim = _malloc_trim()
        self.runs = 0

    def start(self) -> None:
        """Starts the periodic check."""
        self._timer = PeriodicCallback(self.tick, self.interval * 1000)
        self._timer.start()

    def stop(self) -> None:
        """Stops the periodic check."""
        if self._timer is not None:
            self._timer.stop()

    def tick(self, force: bool = False) -> bool:
        """Collects and trims if enough sockets closed since the last run; True if it ran.

        A full collection scans every live object, so its pause grows with the sockets still
        open: it runs only when the closed ones are at least half as many as the open ones
        (and at least `threshold`). A burst of short HTTP requests beside 10k open sockets
        (a login storm) then costs no pause; real churn still gets collected.
        """
        closed = self.server.closed_sockets
        needed = max(self.threshold, self.server.open_sockets // 2)
        if not force and closed - self._seen < needed:
            return False
        self._seen = closed
        gc.collect()
        if self._trim is not None:
            self._trim(0)
        self.runs += 1
        return True
