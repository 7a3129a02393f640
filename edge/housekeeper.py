"""Gives memory back: malloc_trim after churn, and large blocks (a login's argon2id working
memory) straight back to the OS when freed."""

from __future__ import annotations

from typing import Any

from tornado.ioloop import PeriodicCallback

from edge.server import EdgeServer

__all__ = ["Housekeeper", "return_large_blocks", "LARGE_BLOCK"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt() parameters
LARGE_BLOCK = 4 << 20  # bytes: blocks from this size on get a mapping of their own
# Free memory at the top of the main heap kept before it is trimmed: what glibc's own
# adjustment reached after a 19 MiB block, so small allocations behave as they did.
TRIM_THRESHOLD = 32 << 20


def _libc_function(name: str) -> Any:
    """Returns a function of glibc, or None where it does not exist."""
    try:
        import ctypes

        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def _malloc_trim() -> Any:
    """Returns glibc's malloc_trim, or None where it does not exist."""
    return _libc_function("malloc_trim")


def return_large_blocks() -> bool:
    """Has glibc map every block of LARGE_BLOCK or more on its own, so freeing it gives it back
    to the OS at once; returns whether it could (glibc only).

    A login hashes with argon2id in 19 MiB. By default glibc raises its mmap threshold to the
    size of the largest block it has freed, so from the second hash on that block came from
    the hashing thread's arena and stayed there when freed: every thread that had hashed kept
    19 MiB for good (malloc_trim does not give back the top of a thread's arena), and the
    server's memory stepped up the first time two logins overlapped. A fixed threshold maps
    the block for each hash and unmaps it after, for about 10 ms of page faults per hash.
    """
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


class Housekeeper:
    """Gives the heap closed sockets freed back to the OS after churn.

    A closed socket leaves no reference cycle (tests/test_reference_cycles.py): its objects
    are freed as it closes, so churn needs no garbage collection. This used to run a full
    collection after churn as well, which walked every live object with the event loop held
    (40-60 ms at 2,000 sockets, 120-160 ms at 5,000, every 20-50 s under the soak's churn) and
    freed nothing the soak could see in RSS; Python's own full collections, rare under
    tune_gc(), are left to collect whatever cycles anything else makes. Every `interval`
    seconds, if at least `threshold` sockets closed since the last run, this runs glibc's
    malloc_trim(0) (0.2-0.3 ms at 2,000 sockets). With no churn it costs nothing.
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
        """Trims the heap if enough sockets closed since the last run; True if it ran: when
        the closed ones are at least half as many as the open ones (and at least
        `threshold`), so a burst of short HTTP requests beside 10k open sockets does not
        trim each time."""
        closed = self.server.closed_sockets
        needed = max(self.threshold, self.server.open_sockets // 2)
        if not force and closed - self._seen < needed:
            return False
        self._seen = closed
        if self._trim is not None:
            self._trim(0)
        self.runs += 1
        return True
