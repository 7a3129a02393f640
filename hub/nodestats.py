"""The `/ws/stats` numbers of the whole cluster: this node's hub stats plus every live node's.

`LocalStats` (memory broker) answers with this node alone, as one entry of `nodes`.
`RedisStats` publishes this node's counts to Redis on a heartbeat, with a TTL, and sums the
entries of every node still alive: a node that stops publishing drops out after the TTL.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from hub.events import now_rfc3339
from hub.hub import Hub

__all__ = ["ClusterStats", "LocalStats", "RedisStats", "node_entry", "merge"]

log = logging.getLogger("hub.stats")

PUBLISH_SECONDS = 1.0
STATS_TTL_SECONDS = 5.0
READ_TIMEOUT = 1.0  # seconds /ws/stats waits for Redis before answering for this node alone
SUMMED = ("total_clients", "messages_delivered", "events_published", "slow_consumers_dropped")

# KEYS: the node's stats key, the nodes zset. ARGV: node id, json, ttl ms.
_PUBLISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return 1
"""

# KEYS: the nodes zset. ARGV: the stats key prefix. Returns the live nodes' json entries.
_READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  local value = redis.call('GET', ARGV[1] .. node)
  if value then table.insert(out, value) end
end
return out
"""


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


class RedisStats:
    """Every node's counts through Redis: published each second, kept for 5 s."""

    def __init__(
        self, hub: Hub, node_id: str, redis: Any, prefix: str,
        users_online: Callable[[], Awaitable[int]] | None = None,
        interval: float = PUBLISH_SECONDS, ttl: float = STATS_TTL_SECONDS,
    ) -> None:
        self.hub = hub
        self.node_id = node_id
        self.redis = redis
        self.interval = interval
        self.ttl = ttl
        self.users_online = users_online
        self._key_prefix = f"{prefix}:stats:node:"
        self._nodes_key = f"{prefix}:stats:nodes"
        self._publish = redis.register_script(_PUBLISH)
        self._read = redis.register_script(_READ)
        self._task: asyncio.Task | None = None
        self._failing = False

    async def start(self) -> None:
        """Publishes this node's counts now and then every interval."""
        try:
            await self.publish()
        except Exception as exc:
            log.warning("stats: cannot publish this node's counts to Redis: %s", exc)
            self._failing = True
        self._task = asyncio.create_task(self._loop())

    async def publish(self) -> None:
        """Writes this node's current counts with the TTL."""
        entry = node_entry(self.node_id, self.hub.get_stats())
        await self._publish(keys=[self._key_prefix + self.node_id, self._nodes_key],
                            args=[self.node_id, json.dumps(entry), int(self.ttl * 1000)])

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.publish()
                if self._failing:
                    log.info("stats: publishing to Redis again")
                self._failing = False
            except Exception as exc:
                if not self._failing:
                    log.warning("stats: cannot publish this node's counts to Redis: %s", exc)
                self._failing = True

    async def collect(self) -> dict[str, Any]:
        """Returns the cluster's sums and every live node (this one as it is right now).

        Without Redis, the answer is this node's alone.
        """
        local = self.hub.get_stats()
        mine = node_entry(self.node_id, local)
        try:
            raw = await asyncio.wait_for(
                self._read(keys=[self._nodes_key], args=[self._key_prefix]), READ_TIMEOUT)
            users = await self.users_online() if self.users_online is not None else None
        except Exception as exc:
            log.warning("stats: cannot read the other nodes' counts from Redis: %s", exc)
            return merge(local, [mine])
        nodes = {self.node_id: mine}
        for value in raw:
            entry = json.loads(value)
            nodes.setdefault(entry["node"], entry)
        return merge(local, list(nodes.values()), users)

    async def close(self) -> None:
        """Stops publishing and withdraws this node's entry."""
        if self._task is not None:
            self._task.cancel()
        try:
            await self.redis.delete(self._key_prefix + self.node_id)
            await self.redis.zrem(self._nodes_key, self.node_id)
        except Exception as exc:
            log.warning("stats: could not withdraw node %s: %s", self.node_id, exc)
