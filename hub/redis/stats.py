"""Every node's `/ws/stats` counts through Redis (hub/nodestats.py sums them).

Each node publishes its counts on a heartbeat, with a TTL; a node that stops publishing drops
out of the sums after the TTL.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hub.hub import Hub
from hub.nodestats import merge, node_entry
from hub.redis.scripts import STATS_PUBLISH, STATS_READ

__all__ = ["RedisStats"]

log = logging.getLogger("hub.stats")

PUBLISH_SECONDS = 1.0
STATS_TTL_SECONDS = 5.0
READ_TIMEOUT = 1.0  # seconds /ws/stats waits for Redis before answering for this node alone


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
        self._publish = redis.register_script(STATS_PUBLISH)
        self._read = redis.register_script(STATS_READ)
        self._task: asyncio.Task | None = None
        self._failing = False
        # More fields of this node's entry (a --workers worker: its number, host, port and
        # the loopback URL of its own metrics).
        self.extra: dict[str, Any] = {}

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
        entry = node_entry(self.node_id, {**self.hub.get_stats(), **self.extra})
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
        mine = node_entry(self.node_id, {**local, **self.extra})
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
