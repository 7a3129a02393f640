"""The hub's stats object: connections by role and its running totals since start."""

from __future__ import annotations

from hub.client import Client
from hub.events import now_rfc3339

__all__ = ["Stats"]


class Stats:
    """Hub method that reports its indexes and counters; mixed into hub.hub.Hub."""

    clients: dict[str, Client]
    by_user: dict[int, dict[str, Client]]
    by_role: dict[str, dict[str, Client]]
    messages_delivered: int
    events_published: int
    slow_consumers_dropped: int
    sse_clients: int

    def get_stats(self) -> dict[str, object]:
        """Returns the seed's stats object plus unique users and running totals."""
        return {
            "total_clients": len(self.clients),
            "by_transport": {"websocket": len(self.clients) - self.sse_clients,
                             "sse": self.sse_clients},
            "by_role": {role: len(c) for role, c in sorted(self.by_role.items()) if c},
            "unique_users": len(self.by_user),
            "messages_delivered": self.messages_delivered,
            "events_published": self.events_published,
            "slow_consumers_dropped": self.slow_consumers_dropped,
            "timestamp": now_rfc3339(),
        }
