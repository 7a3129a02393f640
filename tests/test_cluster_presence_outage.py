"""RedisPresence across a Redis restart (a private redis-server with its data kept on disk):
changes made while Redis was away are written when it is back, and announced once."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
import redis.asyncio as aioredis
from conftest import IN_CI
from serverproc import free_port, wait_for

from hub.presence import ONLINE
from hub.redis.presence import RedisPresence

GRACE = 0.6


class DurableRedis:
    """A redis-server of this test alone that keeps its data across a restart (AOF)."""

    def __init__(self, directory: str) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            if IN_CI:
                pytest.fail("redis-server is not installed (required when CI=true)")
            pytest.skip("redis-server is not installed")
        self.port, self.dir, self.proc = free_port(), directory, None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(self._answers, 10), "redis-server did not start"

    def _answers(self) -> bool:
        result = subprocess.run(["redis-cli", "-p", str(self.port), "PING"],
                                capture_output=True, text=True, timeout=5)
        return result.stdout.strip() == "PONG"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def durable_redis(tmp_path):
    server = DurableRedis(str(tmp_path))
    yield server
    server.stop()


@pytest.mark.gen_test(timeout=60)
async def test_changes_during_a_redis_outage_are_announced_once_when_it_is_back(durable_redis):
    """Redis stops for 2 s: user 2 leaves node a and user 3 joins it meanwhile; user 1 stays
    on both nodes. Once Redis is back: 2 leaves once, 3 joins once, 1 never flaps, and the
    cluster counts match the nodes' own."""
    url = f"redis://127.0.0.1:{durable_redis.port}/0"
    clients = [aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1)
               for _ in range(2)]
    a, b = (RedisPresence(c, "p", name, grace=GRACE, heartbeat=0.1, node_ttl=1.0)
            for c, name in zip(clients, ("a", "b"), strict=True))
    announced: list[tuple] = []
    for node in (a, b):
        node.attach(lambda *change: announced.append(change))
        await node.start()
    try:
        a.join(ONLINE, 1, "One")
        b.join(ONLINE, 1, "One")
        a.join(ONLINE, 2, "Two")
        await asyncio.sleep(0.3)
        assert sorted(announced) == [(ONLINE, 1, "One", True), (ONLINE, 2, "Two", True)]
        announced.clear()

        durable_redis.stop()
        a.leave(ONLINE, 2)
        a.join(ONLINE, 3, "Three")
        await asyncio.sleep(2.0)
        assert announced == []  # nothing can be decided without Redis
        durable_redis.start()

        async def settled() -> bool:
            members = [(m.user_id, m.connections) for m in await b.fetch(ONLINE)]
            return members == [(1, 2), (3, 1)]

        deadline = asyncio.get_running_loop().time() + 15
        while not await settled():
            assert asyncio.get_running_loop().time() < deadline, await b.fetch(ONLINE)
            await asyncio.sleep(0.1)
        await asyncio.sleep(GRACE * 3)  # any flap of user 1, or a second announcement
        assert sorted(announced) == [(ONLINE, 2, "Two", False), (ONLINE, 3, "Three", True)]
    finally:
        await a.close()
        await b.close()
        for c in clients:
            await c.aclose()
