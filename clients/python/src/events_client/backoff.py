"""Reconnect delays: exponential backoff with full jitter, bounded."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """How long to wait before reconnect attempt n (0 first): a random time between 0 and
    min(maximum, initial * factor**n) seconds, so clients cut at once do not return at once.
    After `max_attempts` failed attempts in a row the client gives up (None: never)."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("Backoff needs 0 < initial <= maximum and factor >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("Backoff.max_attempts must be at least 1 (or None)")

    def ceiling(self, attempt: int) -> float:
        """Returns the longest delay of attempt n."""
        # The exponent is capped so that a client retrying for days cannot overflow a float.
        return min(self.maximum, self.initial * self.factor ** min(attempt, 64))

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Returns a random delay for attempt n (full jitter)."""
        return rng() * self.ceiling(attempt)
