"""Cluster-wide presence in Redis: per-node entries, a node heartbeat, and sweeping the dead.

Each node writes, for every (key, user) it serves, its own connection count into a hash of its
own (`P:node:<node>`), and the change into the cluster-wide count of that user under the key
(`P:m:<key>`), in one Lua step: the node whose step takes a user's cluster count from nothing
to one announces the join; a step that takes it to zero starts the 5 s grace (`P:leaving`, a
sorted set of due times). The leave is announced by whichever node first runs the expiry step
after the grace, if the user has not come back on any node meanwhile. Every node refreshes
its entry in `P:nodes` (scored with its expiry) on a heartbeat; any node finding an expired
one takes that node's counts off the cluster counts in one atomic step, so the users it
served leave (once) like any other. Times are Redis's own clock, so node clocks may differ.

The hub's calls stay synchronous: changes are queued and written in order by one task, in
pipelines. The local counts are the truth a node re-asserts after a failure or after it was
swept while cut off from Redis (its entries come back, its users join again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hub.presence import GRACE_SECONDS, ChangeHandler, Member
from hub.redis.scripts import PRESENCE_EXPIRE, PRESENCE_HEARTBEAT, PRESENCE_SET, PRESENCE_SWEEP

__all__ = ["RedisPresence", "HEARTBEAT_SECONDS", "NODE_TTL_SECONDS"]

log = logging.getLogger("hub.presence")

HEARTBEAT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 1.0
# A node silent this long is swept; its users then leave after the grace unless they are back
# on another node: at most TTL + heartbeat + grace + heartbeat = 19 s after a node dies.
NODE_TTL_SECONDS = 10.0


class RedisPresence:
    """Presence shared by every node on one Redis; the Presence protocol plus start/close."""

    def __init__(
        self, redis: Any, prefix: str, node_id: str, grace: float = GRACE_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS, node_ttl: float = NODE_TTL_SECONDS,
    ) -> None:
        self.redis = redis
        self.node_id = node_id
        self.grace = grace
        self.heartbeat = heartbeat
        self.node_ttl = node_ttl
        self._p = f"{prefix}:presence:"
        self._node_key = f"{self._p}node:{node_id}"
        self._nodes_key = f"{self._p}nodes"
        self._leaving_key = f"{self._p}leaving"
        self._on_change: ChangeHandler | None = None
        # This node's connections per (key, user id): [name, count].
        self._local: dict[tuple[str, int], list[Any]] = {}
        self._queue: list[tuple[str, int]] = []  # (key, user id) whose count changed, in order
        self._dirty: set[tuple[str, int]] = set()  # changes a failed write may have lost
        self._resync = False  # re-assert every local entry (after being swept)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None
        self._scripts = {name: redis.register_script(text) for name, text in
                         (("set", PRESENCE_SET), ("heartbeat", PRESENCE_HEARTBEAT),
                          ("sweep", PRESENCE_SWEEP),
                          ("expire", PRESENCE_EXPIRE))}
        self.healthy = True
        self.stopped = False  # set by close(): the loops end even if a Redis call ate the cancel
        # Told which nodes this node's sweep found dead (each dead node is swept by one node).
        self.swept_observers: list[Callable[[list[str]], object]] = []
        self._expiring: set[asyncio.Task] = set()

    # -- the Presence protocol (IOLoop, synchronous) --------------------------------------

    def attach(self, on_change: ChangeHandler) -> None:
        """Sets the join/leave callback (called for the changes this node announces)."""
        self._on_change = on_change

    def join(self, key: str, user_id: int, name: str) -> None:
        """Counts a connection of this node; the write to Redis follows in order."""
        entry = self._local.get((key, user_id))
        if entry is None:
            self._local[(key, user_id)] = [name, 1]
        else:
            entry[0], entry[1] = name, entry[1] + 1
        self._changed(key, user_id)

    def leave(self, key: str, user_id: int) -> None:
        """Uncounts a connection of this node."""
        entry = self._local.get((key, user_id))
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self._local[(key, user_id)]
        self._changed(key, user_id)

    def members(self, key: str) -> list[Member]:
        """Returns the users this node serves under key (for local metrics)."""
        return sorted((Member(uid, entry[0], entry[1]) for (k, uid), entry in
                       self._local.items() if k == key), key=lambda m: m.user_id)

    async def fetch(self, key: str) -> list[Member]:
        """Returns the users present under key on every node (those within the grace too).

        If Redis does not answer within READ_TIMEOUT_SECONDS, returns this node's members.
        """
        try:
            raw = await asyncio.wait_for(self.redis.hgetall(f"{self._p}m:{key}"),
                                         READ_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("presence: cannot read %r from Redis (%s: %s); answering with this "
                        "node's members", key, type(exc).__name__, exc)
            return self.members(key)
        fields = {_text(k): _text(v) for k, v in raw.items()}
        out = [Member(int(f[2:]), fields.get(f"n:{f[2:]}", ""), int(v))
               for f, v in fields.items() if f.startswith("c:")]
        return sorted(out, key=lambda m: m.user_id)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Registers this node and starts the writer and the heartbeat/sweeper (which keep
        trying while Redis is unreachable)."""
        try:
            await self._beat()
        except Exception as exc:
            self._failed(exc)
        self._task = asyncio.create_task(self._writer())
        self._ticker = asyncio.create_task(self._tick())

    async def close(self) -> None:
        """Writes what is queued, then withdraws this node: whatever it still counted is
        taken off at once (its users leave after the grace unless they are back elsewhere)."""
        self.stop()
        try:
            await asyncio.wait_for(self._flush(), 2.0)
            await self.redis.zadd(self._nodes_key, {self.node_id: 0})
            await self._sweep()
        except Exception as exc:  # the others sweep this node after its TTL
            log.warning("presence: could not withdraw node %s: %s", self.node_id, exc)

    def stop(self) -> None:
        """Stops the writer and the heartbeat at once, writing nothing more."""
        self.stopped = True
        for task in (self._ticker, self._task, *self._expiring):
            if task is not None:
                task.cancel()

    # -- writing -------------------------------------------------------------------------

    def _changed(self, key: str, user_id: int) -> None:
        self._queue.append((key, user_id))
        self._wake.set()

    async def _writer(self) -> None:
        while not self.stopped:
            await self._wake.wait()
            self._wake.clear()
            if self.stopped:
                return
            try:
                await self._flush()
            except Exception as exc:
                self._failed(exc)
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _flush(self) -> None:
        """Writes the queued changes (and any to re-assert) in one pipeline, in order."""
        batch, self._queue = self._queue, []
        if self._resync:
            batch = list(self._dirty | set(self._local)) + batch
        elif self._dirty:
            batch = list(self._dirty) + batch
        if not batch:
            return
        resync, self._resync = self._resync, False
        pending, self._dirty = set(batch), set()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                names = [await self._set(key, user_id, pipe) for key, user_id in batch]
                results = await pipe.execute()
        except BaseException:
            self._dirty |= pending
            self._resync = self._resync or resync
            raise
        if not self.healthy:
            log.info("presence: Redis reachable again; this node's entries are written")
        self.healthy = True
        grace_started = False
        for (key, user_id), name, result in zip(batch, names, results, strict=True):
            if result == 1:
                self._announce(key, user_id, name, True)
            grace_started = grace_started or result == 2
        if grace_started:
            asyncio.get_running_loop().call_later(self.grace + 0.05, self._wake_expiry)

    async def _set(self, key: str, user_id: int, pipe: Any) -> str:
        """Queues the Lua step writing this node's count for (key, user) on pipe."""
        entry = self._local.get((key, user_id))
        name, count = (entry[0], entry[1]) if entry else ("", 0)
        field = f"{user_id}|{key}"
        await self._scripts["set"](
            keys=[self._node_key, f"{self._p}m:{key}", self._leaving_key],
            args=[field, user_id, name, count, field, int(self.grace * 1000)], client=pipe)
        return name

    def _failed(self, exc: BaseException) -> None:
        if self.healthy:
            log.warning("presence: Redis unreachable (%s); will re-assert this node's entries",
                        exc)
        self.healthy = False

    # -- heartbeat, sweeping, expiry -----------------------------------------------------

    async def _tick(self) -> None:
        while not self.stopped:
            await asyncio.sleep(self.heartbeat)
            if self.stopped:
                return
            try:
                await self._beat()
                await self._sweep()
                await self._expire()
            except Exception as exc:
                self._failed(exc)

    async def _beat(self) -> None:
        added = await self._scripts["heartbeat"](
            keys=[self._nodes_key], args=[self.node_id, int(self.node_ttl * 1000)])
        if added and self._task is not None:  # swept while away: every entry comes back
            log.warning("presence: node %s was swept; re-asserting its entries", self.node_id)
            self._resync = True
            self._wake.set()

    async def _sweep(self) -> None:
        dead = await self._scripts["sweep"](keys=[self._nodes_key, self._leaving_key],
                                            args=[self._p, int(self.grace * 1000)])
        if dead:
            nodes = [_text(n) for n in dead]
            log.info("presence: swept dead node(s) %s", ", ".join(nodes))
            for observer in self.swept_observers:
                observer(nodes)

    async def _expire(self) -> None:
        out = await self._scripts["expire"](keys=[self._leaving_key], args=[self._p])
        for i in range(0, len(out), 3):
            self._announce(_text(out[i]), int(out[i + 1]), _text(out[i + 2]), False)

    def _wake_expiry(self) -> None:
        if not self.stopped:
            task = asyncio.ensure_future(self._expire_quietly())
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

    async def _expire_quietly(self) -> None:
        try:
            await self._expire()
        except Exception as exc:
            self._failed(exc)

    def _announce(self, key: str, user_id: int, name: str, joined: bool) -> None:
        if self._on_change is not None:
            try:
                self._on_change(key, user_id, name, joined)
            except Exception:
                log.exception("presence: announcing %s of user %s failed", key, user_id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
