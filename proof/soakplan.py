"""The sizes of a soak run (Plan) and the load-generator process that runs its clients."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.procs import Worker

__all__ = ["Plan", "SoakProc", "WARM_UP_SECONDS", "WINDOW_SECONDS"]

WARM_UP_SECONDS = 120.0  # before memory and latency must hold flat (half of a shorter run)
# The shortest span latency is judged over: an interval, or as many as make up this much,
# judged by the median of their p99s. At 2,000 connections one broadcast is some 9% of a 10 s
# interval's deliveries, so an interval's p99 is its slowest broadcast's, and one broadcast
# that met a pause (a login's password hash, a full collection, a busy load generator) doubled
# it; pooled, 30 s of latencies still had their p99 from that one broadcast (3% of them). The
# median of three intervals' p99s is no longer decided by one slow second; a latency that
# grows still moves it.
WINDOW_SECONDS = 30.0


@dataclass(frozen=True)
class Plan:
    """Sizes and rates of one run."""

    minutes: float
    connections: int  # every socket open at once: feed, room, churning and slow clients
    interval: float  # seconds per line
    rooms: int
    room_interval: float  # seconds between two messages of one room
    churn_rate: float  # connects (and disconnects) per second
    churn_lifetime: float  # seconds a churning client stays
    login_rate: float
    slow: int  # slow consumers per batch (one at the start, then one a minute)
    workers: int
    history_ttl: float  # seconds the server keeps each stream's recovery history

    @property
    def churn_pool(self) -> int:
        """Returns how many churning clients are open at once."""
        return round(self.churn_rate * self.churn_lifetime)

    @property
    def members(self) -> int:
        """Returns the members of each room (about 40% of the connections in rooms)."""
        return max(2, int(0.4 * self.connections / self.rooms))

    @property
    def feed(self) -> int:
        """Returns the clients that follow only the feed."""
        return self.connections - self.rooms * self.members - self.churn_pool - self.slow

    @property
    def intervals(self) -> int:
        """Returns the number of intervals (lines) of the run."""
        return max(1, round(self.minutes * 60 / self.interval))

    @property
    def warm_up(self) -> int:
        """Returns the intervals of the warm-up: two minutes, or half of a shorter run."""
        seconds = min(WARM_UP_SECONDS, self.intervals * self.interval / 2)
        return max(1, min(self.intervals - 1, round(seconds / self.interval)))

    @property
    def window(self) -> int:
        """Returns the intervals whose p99s' median is judged as one (at least one, at most the
        warm-up's, so the reference lies within the warm-up)."""
        return max(1, min(self.warm_up, math.ceil(WINDOW_SECONDS / self.interval - 1e-9)))

    @property
    def samples_per_interval(self) -> int:
        """Returns how many samples each interval takes (one every 5 s or so, at least 5)."""
        return max(5, round(self.interval / 5))

    def describe(self) -> str:
        """Returns the sizes in one line."""
        return (f"{self.minutes:g} min, {self.connections:,} connections ({self.feed:,} feed, "
                f"{self.rooms} rooms x {self.members}, {self.churn_pool} churning, "
                f"{self.slow} slow), {self.workers} load generators")


class SoakProc(Worker):
    """A bench/procs.py load-generator process running the soak's worker (proof/soakload.py)."""

    def __init__(self, index: int, log_path: str, max_seconds: float) -> None:
        super().__init__(index, log_path, max_seconds)
        self.argv = ["proof.soakload" if a == "bench.loadgen" else a for a in self.argv]
