"""The run's progress lines, each stamped with the time since the run started."""

from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """Progress lines with the time since the run started."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        """Returns the seconds since the run started."""
        return time.monotonic() - self.start

    def say(self, text: str) -> None:
        """Prints one progress line stamped with the elapsed time."""
        print(f"[{self.elapsed():6.1f}s] {text}", flush=True)
