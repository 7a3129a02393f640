"""Faults in a cluster: killed Redis connections, a Redis outage, a node killed with SIGKILL.

Tests that disturb Redis run their own redis-server on a free port (never the machine's);
every test counts numbered events per client: no gap, no duplicate, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from cluster import (
    Nodes,
    PrivateRedis,
    Socket,
    call,
    login,
    need_redis,
    redis_cli,
    register,
)
from serverproc import ROOT

ROOM = "room:lobby"


def numbers(sock: Socket, type_: str) -> list[tuple[int, int]]:
    """Returns (offset, number) of a socket's numbered events of one type."""
    if type_ == "channel.message":
        return [(int(e["offset"]), e["data"]["body"]["n"]) for e in sock.of_type(type_)]
    return [(int(e["offset"]), int(e["data"]["message"])) for e in sock.of_type(type_)
            if e["data"]["message"].isdigit()]


def assert_exact(sock: Socket, type_: str, count: int, consecutive: bool) -> None:
    """The socket got 0..count-1 once each, in order, with increasing offsets."""
    got = numbers(sock, type_)
    assert [n for _, n in got] == list(range(count)), (sock.name, type_, got[-5:])
    offsets = [o for o, _ in got]
    assert offsets == sorted(set(offsets)), (sock.name, type_)
    if consecutive:
        assert offsets == list(range(offsets[0], offsets[0] + count)), (sock.name, type_)


async def health(port: int) -> str:
    """Returns a node's /health status."""
    status, body = await call(port, "GET", "/health")
    return body["status"]


async def until(check, timeout: float, what: str) -> None:
    """Polls an async check until it is true."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.gen_test(timeout=180)
@pytest.mark.parametrize("kind", ["pubsub", "normal"])
async def test_killed_redis_connections_lose_and_duplicate_nothing(tmp_path, kind):
    """CLIENT KILL TYPE pubsub|normal twice mid-stream: nodes reconnect, resubscribe and
    catch up from Redis; every reader on both nodes gets every room message and broadcast
    once, in order, with consecutive room offsets."""
    redis = PrivateRedis(tmp_path / "redis")
    nodes = Nodes(tmp_path, redis.url)
    try:
        nodes.create_admin()
        a, b = nodes.start().port, nodes.start().port
        admin = (await login(a))["access_token"]
        readers = [Socket(f"r{i}") for i in range(4)]
        for i, sock in enumerate(readers):
            await sock.open((a, b)[i % 2], admin)
            assert (await sock.request("subscribe", {"channel": ROOM}))["type"] == "reply"
        writer = Socket("writer")
        await writer.open(a, (await register(a, "Writer"))["access_token"])
        rooms, alerts, killed = 240, 80, []

        async def write() -> None:
            for n in range(rooms):
                if n in (rooms // 3, 2 * rooms // 3):
                    killed.append(redis_cli(redis.url, "CLIENT", "KILL", "TYPE", kind))
                reply = await writer.request("publish", {"channel": ROOM, "data": {"n": n}})
                assert reply["type"] == "reply", reply

        async def broadcast() -> None:
            for n in range(alerts):
                status, body = await call(b, "POST", "/ws/broadcast", {"message": str(n)},
                                          admin)
                assert status == 200, body

        await asyncio.gather(write(), broadcast())
        assert all(int(k) >= 1 for k in killed), killed  # connections were really killed
        for sock in readers:
            await sock.wait(lambda s: len(s.of_type("channel.message")) >= rooms
                            and len(numbers(s, "system.alert")) >= alerts, timeout=60,
                            what="every event")
        await asyncio.sleep(0.5)  # a late duplicate would show up here
        for sock in readers:
            assert sock.closed is None
            assert_exact(sock, "channel.message", rooms, consecutive=True)
            assert_exact(sock, "system.alert", alerts, consecutive=False)
        if kind == "pubsub":
            for node in nodes.nodes:
                assert "catching up every stream" in node.output()
    finally:
        nodes.stop()
        redis.stop()


@pytest.mark.slow
@pytest.mark.gen_test(timeout=180)
async def test_redis_outage_keeps_sockets_degrades_health_and_publishes_the_outbox_after(
        tmp_path):
    """Redis stopped for 10 s: sockets stay open, /health says degraded, a publish answers
    `unavailable`, a broadcast is kept in the outbox; after the restart /health is ok, the
    broadcast reaches every reader once and a resume across the lost data says recovered
    false (new epoch)."""
    redis = PrivateRedis(tmp_path / "redis")
    nodes = Nodes(tmp_path, redis.url, "--health-interval=0.5")
    try:
        nodes.create_admin()
        a, b = nodes.start().port, nodes.start().port
        admin = (await login(a))["access_token"]
        readers = [Socket(f"r{i}") for i in range(2)]
        for i, sock in enumerate(readers):
            await sock.open((a, b)[i], admin)
            assert (await sock.request("subscribe", {"channel": ROOM}))["type"] == "reply"
        status, _ = await call(a, "POST", "/ws/broadcast", {"message": "0"}, admin)
        for sock in readers:
            await sock.wait(lambda s: numbers(s, "system.alert"), what="first alert")
        before = dict(readers[0].welcome)
        before["offset"] = str(numbers(readers[0], "system.alert")[-1][0])
        redis.stop()
        stopped = time.monotonic()
        for port in (a, b):
            await until(lambda p=port: _is(health(p), "degraded"), 10, "degraded")
        reply = await readers[0].request("publish", {"channel": ROOM, "data": {"n": 0}})
        assert reply["type"] == "error" and reply["data"]["code"] == "unavailable", reply
        status, body = await call(b, "POST", "/ws/broadcast", {"message": "1"}, admin)
        assert status == 200, body  # committed: the outbox keeps it until Redis is back
        await asyncio.sleep(max(0.0, 10.0 - (time.monotonic() - stopped)))
        assert all(sock.closed is None for sock in readers)
        assert [n for _, n in numbers(readers[1], "system.alert")] == [0]
        redis.start()
        for port in (a, b):
            await until(lambda p=port: _is(health(p), "ok"), 20, "ok again")
        for sock in readers:
            await sock.wait(lambda s: len(numbers(s, "system.alert")) >= 2, timeout=20,
                            what="the outbox alert")
        reply = await readers[1].request("publish", {"channel": ROOM, "data": {"n": 1}})
        assert reply["type"] == "reply", reply
        for sock in readers:
            await sock.wait(lambda s: numbers(s, "channel.message"), timeout=20,
                            what="the message published after the outage")
        await asyncio.sleep(0.5)  # a late duplicate would show up here
        for sock in readers:
            assert sock.closed is None
            assert [n for _, n in numbers(sock, "system.alert")] == [0, 1]
            assert [n for _, n in numbers(sock, "channel.message")] == [1]
        late = Socket("late")
        welcome = await late.open(a, admin, f"&since={before['offset']}&epoch={before['epoch']}")
        assert welcome["recovered"] is False and welcome["epoch"] != before["epoch"], welcome
    finally:
        nodes.stop()
        redis.stop()


async def _is(status: asyncio.Future, wanted: str) -> bool:
    try:
        return await status == wanted
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.gen_test(timeout=300)
async def test_a_thousand_clients_of_a_killed_node_recover_on_the_survivor(tmp_path):
    """SIGKILL one node while 1,000 clients (four processes) read a numbered broadcast
    stream from it: each resumes on the other node with since/epoch, is told recovered, and
    gets every number exactly once, in order."""
    nodes = Nodes(tmp_path, need_redis())
    procs: list[subprocess.Popen] = []
    try:
        nodes.create_admin()
        victim, survivor = nodes.start(), nodes.start()
        admin = (await login(survivor.port))["access_token"]
        reader = await register(survivor.port, "Reader")
        script = os.path.join(ROOT, "tests", "cluster_readers.py")
        for _ in range(4):
            procs.append(subprocess.Popen(
                [sys.executable, script, f"--ports={victim.port},{survivor.port}",
                 "--count=250", f"--token={reader['access_token']}", "--timeout=150"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        loop = asyncio.get_running_loop()
        for proc in procs:
            line = await loop.run_in_executor(None, proc.stdout.readline)
            assert line.strip() == "ready", (line, proc.stderr.read() if proc.poll() else "")
        total = 60
        for n in range(total):
            if n == total // 3:
                victim.proc.kill()
            status, body = await call(survivor.port, "POST", "/ws/broadcast",
                                      {"message": str(n)}, admin)
            assert status == 200, body
            await asyncio.sleep(0.05)
        victim.proc.wait(10)
        await asyncio.sleep(1.0)
        status, _ = await call(survivor.port, "POST", "/ws/broadcast",
                               {"message": f"end:{total}"}, admin)
        assert status == 200
        results = []
        for proc in procs:
            out, err = await loop.run_in_executor(None, proc.communicate, None)
            assert proc.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        summary = {key: sum(r[key] for r in results) for key in
                   ("clients", "complete", "gaps", "duplicates", "out_of_order", "resumed",
                    "recovered", "unfinished")}
        assert summary["clients"] == 1000
        assert summary["gaps"] == 0 and summary["duplicates"] == 0, summary
        assert summary["out_of_order"] == 0 and summary["unfinished"] == 0, summary
        assert summary["resumed"] == 1000 and summary["recovered"] == 1000, summary
        assert summary["complete"] == 1000, (summary, [r["errors"] for r in results])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        nodes.stop()
