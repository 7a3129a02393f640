"""Shared rate limits and cluster-wide /ws/stats on a real Redis (two "nodes" in one process)."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis
from redistest import REDIS_URL, redis_prefix  # noqa: F401 (fixture)
from serverproc import free_port
from test_hub import FakeConn

from app import make_hub
from auth.sharedlimit import SharedRateLimiter
from hub.broker import MemoryBroker
from hub.client import Client
from hub.nodestats import LocalStats
from hub.redis.stats import RedisStats


@pytest.mark.gen_test(timeout=20)
async def test_two_nodes_share_one_budget(redis_prefix):  # noqa: F811
    """Limit 5 per key: alternating between two nodes, 5 hits pass and the 6th is refused
    on either node, with a retry-after within the window; other keys are untouched."""
    clients = [aioredis.Redis.from_url(REDIS_URL) for _ in range(2)]
    try:
        nodes = [SharedRateLimiter(5, 60, c, redis_prefix, "auth_per_ip") for c in clients]
        waits = [await nodes[i % 2].acheck_and_hit("203.0.113.5") for i in range(5)]
        assert waits == [0] * 5
        for node in nodes:
            wait = await node.acheck_and_hit("203.0.113.5")
            assert 1 <= wait <= 60
        assert sum(node.rejected for node in nodes) == 2
        assert await nodes[0].acount("203.0.113.5") == 5
        assert await nodes[1].aretry_after("203.0.113.5") > 0
        assert await nodes[1].acheck_and_hit("198.51.100.1") == 0
        await nodes[0].areset("203.0.113.5")  # a success clears it everywhere
        assert await nodes[1].acount("203.0.113.5") == 0
        assert not any(node.degraded for node in nodes)
    finally:
        for c in clients:
            await c.aclose()


@pytest.mark.gen_test(timeout=20)
async def test_the_window_slides(redis_prefix):  # noqa: F811
    """Hits older than the window stop counting (a 0.5 s window)."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        limiter = SharedRateLimiter(2, 0.5, client, redis_prefix, "ws_connect")
        assert [await limiter.acheck_and_hit("k") for _ in range(3)][:2] == [0, 0]
        assert await limiter.acheck_and_hit("k") >= 1
        await asyncio.sleep(0.6)
        assert await limiter.acheck_and_hit("k") == 0
        await limiter.ahit("k")  # recorded whatever the limit
        assert await limiter.acount("k") == 2
    finally:
        await client.aclose()


@pytest.mark.gen_test(timeout=20)
async def test_without_redis_each_node_limits_alone_and_says_so(caplog):
    """Redis unreachable: the limiter falls back to the node's own window (still limiting),
    logs the fallback once, and tries Redis again only after RETRY_SECONDS."""
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                     socket_connect_timeout=0.5)
    try:
        limiter = SharedRateLimiter(3, 60, client, "nowhere", "auth_per_ip", timeout=0.5)
        tried = 0
        script = limiter._script

        async def counting(*args, **kwargs):
            nonlocal tried
            tried += 1
            return await script(*args, **kwargs)

        limiter._script = counting
        with caplog.at_level(logging.WARNING, logger="auth.ratelimit"):
            waits = [await limiter.acheck_and_hit("203.0.113.9") for _ in range(4)]
        assert tried == 1  # the later attempts did not wait for Redis again
        assert waits[:3] == [0, 0, 0] and waits[3] >= 1
        assert limiter.degraded and limiter.rejected == 1
        warnings = [r for r in caplog.records if "limiting per node" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await client.aclose()


def _hub_with(clients: list[tuple[int, str]]):
    hub = make_hub(MemoryBroker())
    hub.presence.attach(lambda *args: None)
    for user_id, role in clients:
        hub.register(Client(FakeConn(), user_id, role, f"s{user_id}", 0))
    return hub


@pytest.mark.gen_test(timeout=20)
async def test_stats_sum_every_live_node_and_drop_a_silent_one(redis_prefix):  # noqa: F811
    """Two nodes publish their counts; each answers the sums and both `nodes` entries; a node
    that stops publishing drops out after the TTL."""
    hub_a = _hub_with([(1, "user"), (1, "user"), (2, "admin")])
    hub_b = _hub_with([(3, "user")])
    hub_a.messages_delivered, hub_b.messages_delivered = 10, 5
    clients = [aioredis.Redis.from_url(REDIS_URL) for _ in range(2)]
    a = RedisStats(hub_a, "node-a", clients[0], redis_prefix, interval=0.1, ttl=0.6)
    b = RedisStats(hub_b, "node-b", clients[1], redis_prefix, interval=0.1, ttl=0.6)
    try:
        await a.start()
        await b.start()
        for stats in (await a.collect(), await b.collect()):
            assert stats["total_clients"] == 4 and stats["messages_delivered"] == 15
            assert stats["by_role"] == {"admin": 1, "user": 3}
            assert [(n["node"], n["total_clients"]) for n in stats["nodes"]] == [
                ("node-a", 3), ("node-b", 1)]
            assert stats["nodes"][0]["by_role"] == {"admin": 1, "user": 2}
        b._task.cancel()  # node b dies: no more heartbeats, nothing withdrawn
        await asyncio.sleep(1.0)
        stats = await a.collect()
        assert [n["node"] for n in stats["nodes"]] == ["node-a"]
        assert stats["total_clients"] == 3
    finally:
        await a.close()
        await b.close()
        for c in clients:
            await c.aclose()


@pytest.mark.gen_test(timeout=10)
async def test_one_node_is_the_only_entry_of_nodes():
    """With the memory broker /ws/stats keeps its shape and `nodes` has this node alone."""
    hub = _hub_with([(1, "user"), (2, "user")])
    stats = await LocalStats(hub, "solo").collect()
    assert stats["total_clients"] == 2 and stats["unique_users"] == 2
    assert stats["nodes"] == [{"node": "solo", **{k: v for k, v in stats.items()
                                                   if k != "nodes"}}]


@pytest.mark.gen_test(timeout=20)
async def test_without_redis_stats_and_presence_answer_for_this_node():
    """Redis unreachable: /ws/stats answers with this node alone, and the presence read with
    this node's members, instead of failing."""
    from hub.redis.presence import RedisPresence

    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                     socket_connect_timeout=0.5)
    hub = _hub_with([(1, "user"), (2, "admin")])
    presence = RedisPresence(client, "nowhere", "solo")
    presence.attach(lambda *args: None)
    presence.join("room:x", 1, "Ann")
    try:
        stats = await RedisStats(hub, "solo", client, "nowhere").collect()
        assert stats["total_clients"] == 2 and [n["node"] for n in stats["nodes"]] == ["solo"]
        assert [(m.user_id, m.connections) for m in await presence.fetch("room:x")] == [(1, 1)]
    finally:
        await client.aclose()
