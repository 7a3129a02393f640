"""A fake clock and scheduler, so timers (presence grace, typing expiry) run on demand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FakeClock:
    """Time that moves only when told; `call_later` callbacks run as `advance` passes them."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: dict[int, tuple[float, Callable[[], None]]] = {}
        self._next = 0

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        self._next += 1
        self._timers[self._next] = (self.now + delay, callback)
        return self._next

    def remove_timeout(self, handle: Any) -> None:
        self._timers.pop(handle, None)

    def advance(self, seconds: float) -> None:
        """Moves time forward, running each due timer in order of its due time."""
        end = self.now + seconds
        while True:
            due = [(when, h) for h, (when, _) in self._timers.items() if when <= end]
            if not due:
                break
            when, handle = min(due)
            self.now = max(self.now, when)
            _, callback = self._timers.pop(handle)
            callback()
        self.now = end

    @property
    def pending(self) -> int:
        """How many timers are waiting."""
        return len(self._timers)
