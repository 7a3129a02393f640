"""The `/ws/stats` numbers of the whole cluster: this node's hub stats plus every live node's.

`LocalStats` (memory broker) answers with this node alone, as one entry of `nodes`;
`hub.redis.stats.RedisStats` (its cluster twin) sums every live node's entries with `merge`.
"""

from __future__ import annotations

from typing import Any, Protocol

from hub.events import now_rfc3339
from hub.hub import Hub

__all__ = ["ClusterStats", "LocalStats", "node_entry", "merge"]

SUMMED = ("total_clients", "messages_delivered", "events_published", "slow_consumers_dropped")


class ClusterStats(Protocol):
    """What GET /ws/stats reads."""

    async def start(self) -> None: ...

    async def collect(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def node_entry(node_id: str, stats: dict[str, Any]) -> dict[str, Any]:
    """Returns one node's entry of `nodes`: its id and its hub's stats."""
    return {"node": node_id, **stats}


def merge(local: dict[str, Any], nodes: list[dict[str, Any]],
          unique_users: int | None = None) -> dict[str, Any]:
    """Returns the single-node stats shape with the nodes' sums, and `nodes` itself.

    unique_users is the cluster's (users connected anywhere) when known; a user connected to
    two nodes counts once there, twice in a sum of the nodes' own numbers.
    """
    out = dict(local)
    for field in SUMMED:
        out[field] = sum(int(n.get(field, 0)) for n in nodes)
    by_role: dict[str, int] = {}
    for node in nodes:
        for role, count in node.get("by_role", {}).items():
            by_role[role] = by_role.get(role, 0) + int(count)
    out["by_role"] = dict(sorted(by_role.items()))
    out["by_transport"] = {
        transport: sum(int(n.get("by_transport", {}).get(transport, 0)) for n in nodes)
        for transport in ("websocket", "sse")}
    out["unique_users"] = (unique_users if unique_users is not None
                           else sum(int(n.get("unique_users", 0)) for n in nodes))
    out["timestamp"] = now_rfc3339()
    out["nodes"] = sorted(nodes, key=lambda n: n["node"])
    return out


class LocalStats:
    """One node: the hub's stats, with itself as the only entry of `nodes`."""

    def __init__(self, hub: Hub, node_id: str) -> None:
        self.hub = hub
        self.node_id = node_id

    async def start(self) -> None:
        """Nothing to publish to."""

    async def collect(self) -> dict[str, Any]:
        """Returns the hub's stats and `nodes: [this node]`."""
        stats = self.hub.get_stats()
        return {**stats, "nodes": [node_entry(self.node_id, stats)]}

    async def close(self) -> None:
        """Nothing to release."""
