"""RedisPresence on a real Redis: several instances in one process act as several nodes.

Counted announcements prove "once cluster-wide": every instance records what it announces,
and each join or leave must appear exactly once across all of them.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redistest import REDIS_URL, redis_prefix  # noqa: F401 (fixture)

from hub.presence import ONLINE
from hub.redis.presence import RedisPresence

GRACE = 0.4


class Node:
    """One RedisPresence as a node would run it, recording what it announces."""

    def __init__(self, prefix: str, name: str, node_ttl: float = 1.0) -> None:
        self.redis = aioredis.Redis.from_url(REDIS_URL)
        self.presence = RedisPresence(self.redis, prefix, name, grace=GRACE, heartbeat=0.1,
                                      node_ttl=node_ttl)
        self.announced: list[tuple[str, int, str, bool]] = []
        self.presence.attach(lambda *change: self.announced.append(change))

    async def start(self) -> Node:
        await self.presence.start()
        return self

    def kill(self) -> None:
        """Stops the node as SIGKILL would: no flush, no withdrawal, no heartbeat."""
        self.presence.stop()

    async def close(self) -> None:
        await self.presence.close()
        await self.redis.aclose()


async def nodes(prefix: str, count: int, **kwargs) -> list[Node]:
    return [await Node(prefix, f"n{i}", **kwargs).start() for i in range(count)]


def announced(*all_nodes: Node) -> list[tuple]:
    return sorted(change for node in all_nodes for change in node.announced)


async def settle(seconds: float = 0.15) -> None:
    await asyncio.sleep(seconds)


@pytest.mark.gen_test(timeout=20)
async def test_a_user_on_two_nodes_joins_once_and_leaves_once(redis_prefix):  # noqa: F811
    """Tabs on two nodes: one join; the leave comes after the last tab anywhere, once."""
    a, b = await nodes(redis_prefix, 2)
    try:
        a.presence.join("room:x", 7, "Ann")
        await settle()
        b.presence.join("room:x", 7, "Ann")
        b.presence.join("room:x", 7, "Ann")
        await settle()
        assert announced(a, b) == [("room:x", 7, "Ann", True)]
        (member,) = await b.presence.fetch("room:x")
        assert (member.user_id, member.name, member.connections) == (7, "Ann", 3)
        assert [m.connections for m in a.presence.members("room:x")] == [1]  # this node's
        a.presence.leave("room:x", 7)
        await settle(GRACE + 0.4)
        assert announced(a, b) == [("room:x", 7, "Ann", True)]  # still on node b
        b.presence.leave("room:x", 7)
        b.presence.leave("room:x", 7)
        await settle(0.2)
        assert len(announced(a, b)) == 1  # within the grace: not yet
        await settle(GRACE + 0.4)
        assert announced(a, b) == [("room:x", 7, "Ann", False), ("room:x", 7, "Ann", True)]
        assert await a.presence.fetch("room:x") == []
    finally:
        await a.close()
        await b.close()


@pytest.mark.gen_test(timeout=20)
async def test_a_tab_moving_to_another_node_within_the_grace_does_not_flap(redis_prefix):  # noqa: F811
    """The last tab closes on node a and reopens on node b 0.2 s later: no leave, no join."""
    a, b = await nodes(redis_prefix, 2)
    try:
        a.presence.join(ONLINE, 3, "Bob")
        await settle()
        a.presence.leave(ONLINE, 3)
        await settle(GRACE / 2)
        b.presence.join(ONLINE, 3, "Bob")
        await settle(GRACE * 3)
        assert announced(a, b) == [(ONLINE, 3, "Bob", True)]
        assert [(m.user_id, m.connections) for m in await a.presence.fetch(ONLINE)] == [(3, 1)]
    finally:
        await a.close()
        await b.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_dead_nodes_users_leave_once_though_three_nodes_sweep(redis_prefix):  # noqa: F811
    """Node a dies holding 5 users (one also on node b); b, c and d all sweep: the 4 users
    only a had leave exactly once each, and the one still on b stays."""
    a, b, c, d = await nodes(redis_prefix, 4)
    try:
        for uid in range(1, 6):
            a.presence.join(ONLINE, uid, f"u{uid}")
            a.presence.join("room:r", uid, f"u{uid}")
        await settle()
        b.presence.join(ONLINE, 5, "u5")
        await settle()
        joins = announced(a, b, c, d)
        assert len(joins) == 10 and all(change[3] for change in joins)
        a.kill()
        for node in (a, b, c, d):
            node.announced.clear()
        deadline = asyncio.get_running_loop().time() + 10
        while len(announced(b, c, d)) < 9 and asyncio.get_running_loop().time() < deadline:
            await settle(0.1)
        await settle(0.5)  # time for any duplicate to show up
        left = announced(a, b, c, d)
        expected = sorted([(ONLINE, uid, f"u{uid}", False) for uid in range(1, 5)]
                          + [("room:r", uid, f"u{uid}", False) for uid in range(1, 6)])
        assert left == expected
        assert [m.user_id for m in await c.presence.fetch(ONLINE)] == [5]
        assert await c.presence.fetch("room:r") == []
    finally:
        for node in (b, c, d):
            await node.close()
        await a.redis.aclose()


@pytest.mark.gen_test(timeout=20)
async def test_a_node_swept_while_cut_off_reasserts_its_users(redis_prefix):  # noqa: F811
    """A live node that others took for dead (its heartbeat entry gone) puts its users back:
    within the grace, nobody sees them leave or join again."""
    a, b = await nodes(redis_prefix, 2, node_ttl=5.0)
    try:
        a.presence.join("room:q", 9, "Cy")
        await settle()
        # As if a's heartbeats had stopped reaching Redis: its entry expires, b sweeps it.
        await b.redis.zadd(f"{redis_prefix}:presence:nodes", {"n0": 0})
        await b.presence._sweep()
        assert [m.connections for m in await b.presence.fetch("room:q")] == [0]  # in grace
        await settle(GRACE * 3)  # a's next heartbeat re-asserts before the grace ends
        assert announced(a, b) == [("room:q", 9, "Cy", True)]
        assert [m.connections for m in await b.presence.fetch("room:q")] == [1]
    finally:
        await a.close()
        await b.close()


@pytest.mark.gen_test(timeout=20)
async def test_closing_a_node_withdraws_it_and_its_users_leave(redis_prefix):  # noqa: F811
    """A clean close writes what was queued and withdraws the node; its users leave once."""
    a, b = await nodes(redis_prefix, 2)
    try:
        a.presence.join("room:z", 4, "Di")
        await settle()
        a.presence.leave("room:z", 4)
        await a.close()
        await settle(GRACE + 0.5)
        assert announced(a, b) == [("room:z", 4, "Di", False), ("room:z", 4, "Di", True)]
        nodes_left = await b.redis.zrange(f"{redis_prefix}:presence:nodes", 0, -1)
        assert nodes_left == [b"n1"]
    finally:
        await b.close()
