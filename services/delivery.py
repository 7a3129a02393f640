"""The dashboard's view of delivery: recent publish-to-write latencies and close codes."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["DeliveryWindow", "percentile"]


def percentile(ordered: list[float], fraction: float) -> float:
    """Returns the nearest-rank percentile of an ascending list (0.0 when it is empty)."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, int(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


class DeliveryWindow:
    """Keeps the latest publish-to-write latencies (bounded in age and count) and close codes.

    Fed once per publish, never per recipient; read by the admin dashboard's poll of
    /ws/stats. Prometheus gets the same observations as a histogram (services/metrics.py).
    """

    def __init__(
        self, seconds: float = 300.0, max_samples: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        # (when, latency in seconds), oldest first; at most max_samples publishes.
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        # Close codes since start, as labels ("1000", "1013", "other"), for the dashboard.
        self.closes: dict[str, int] = {}

    def add(self, seconds: float) -> None:
        """Records one publish's latency from publish to the last local socket write."""
        self._samples.append((self._clock(), seconds))

    def closed(self, code: str) -> None:
        """Counts one closed connection by its close-code label."""
        self.closes[code] = self.closes.get(code, 0) + 1

    def summary(self) -> dict[str, object]:
        """Returns latency percentiles in ms over the window, the publish count and closes."""
        horizon = self._clock() - self.seconds
        samples = self._samples
        while samples and samples[0][0] < horizon:
            samples.popleft()
        ordered = sorted(latency for _, latency in samples)
        latency = {name: round(1000.0 * percentile(ordered, q), 3)
                   for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))}
        return {
            "window_seconds": self.seconds,
            "publishes": len(ordered),
            "latency_ms": latency,
            "closes": dict(sorted(self.closes.items())),
        }
