"""The local cluster (`make cluster`): nodes on Redis and PostgreSQL behind a real nginx.

A client drives the cluster only through nginx: the nodes see its real address (trusted
proxy), and when the node holding its socket is SIGKILLed mid-stream it reconnects through
nginx to a surviving node and recovers every acknowledged event exactly once, in order.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from conftest import IN_CI, POSTGRES_URL
from seqcheck import Sequence
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from localcluster.cluster import ClusterConfig, LocalCluster
from localcluster.nginx import NginxError, install_nginx
from localcluster.nodes import ROOT
from localcluster.procs import port_open, wait_until
from localcluster.services import with_database

ADMIN = {"email": "boss@example.com", "password": "adminpass1"}


def _skip_or_fail(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def make_cluster(tmp_path):
    """Returns a function that starts a cluster with a database and Redis prefix of its own."""
    try:
        install_nginx()
    except NginxError as exc:
        _skip_or_fail(f"nginx unavailable: {exc}")
    if not port_open("127.0.0.1", 5432):
        _skip_or_fail("PostgreSQL not reachable at 127.0.0.1:5432")
    started: list[LocalCluster] = []

    def make(nodes: int, *options: str, broker: str = "redis") -> LocalCluster:
        tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        config = ClusterConfig(
            workdir=str(tmp_path / f"cluster{len(started)}"), nodes=nodes, port=0, broker=broker,
            redis_prefix=f"t_cops_{tag}", postgres_url=with_database(POSTGRES_URL, "postgres"),
            database=f"t_cluster_{tag}", drop_database=True, node_options=list(options))
        cluster = LocalCluster(config)
        started.append(cluster)
        cluster.start(say=lambda _text: None)
        return cluster

    yield make
    for cluster in started:
        cluster.stop(say=lambda _text: None)
        _delete_redis_keys(cluster)


def _delete_redis_keys(cluster: LocalCluster) -> None:
    """Deletes the keys under the cluster's Redis prefix (never anything else)."""
    if cluster.config.broker == "memory":
        return
    import redis

    client = redis.Redis.from_url(cluster.redis_url)
    try:
        keys = list(client.scan_iter(match=cluster.config.redis_prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


def _get_from(source: str, port: int, path: str, headers: dict[str, str]) -> int:
    """Sends GET path to nginx from the loopback address source; returns the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def _logged_client(cluster: LocalCluster, marker: str) -> list[str]:
    """Returns the client address of every node access-log line whose URI has marker."""
    found = []
    for node in cluster.nodes:
        for line in node.output().splitlines():
            if marker in line and "(" in line:
                found.append(line.rsplit("(", 1)[1].split(")", 1)[0])
    return found


def test_nodes_behind_nginx_see_the_real_client_address(make_cluster):
    """Through nginx a node logs and rate-limits the client's own address; a forged
    X-Forwarded-For from the client is not believed."""
    cluster = make_cluster(3, "--ws-connect-rate=2")
    port = cluster.nginx.port
    marker = uuid.uuid4().hex
    assert _get_from("127.0.0.7", port, f"/health?probe={marker}",
                     {"X-Forwarded-For": "203.0.113.66"}) == 200
    # The access line is written as the response goes out: wait for it to reach the file.
    assert wait_until(lambda: _logged_client(cluster, marker), 10)
    assert _logged_client(cluster, marker) == ["127.0.0.7"]
    # /ws without a token: 401 until the per-IP connect budget of this address is spent.
    # With per-node budgets (least_conn spreads the attempts) that is at most 2 per node.
    statuses = [_get_from("127.0.0.8", port, "/ws", {}) for _ in range(2 * len(cluster.nodes)
                                                                        + 1)]
    assert statuses[0] == 401 and 429 in statuses, statuses
    # The proxy's own address (every request's peer) is not what is limited.
    assert _get_from("127.0.0.9", port, "/ws", {}) == 401


async def _call(base: str, method: str, path: str, body: Any = None,
                token: str | None = None) -> tuple[int, Any]:
    """Sends one JSON request through nginx; returns (status, parsed body or None)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = HTTPRequest(base + path, method=method, headers=headers,
                          body=json.dumps(body) if body is not None else None,
                          request_timeout=10, connect_timeout=5)
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    try:
        return response.code, json.loads(response.body) if response.body else None
    except ValueError:
        return response.code, None


class Listener:
    """A client through nginx that reconnects with since/epoch and checks numbered alerts."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.ws_url, self.token = ws_url, token
        self.position: dict[str, str] = {}
        self.seq = Sequence()
        self.connections = 0
        self.node_lost = 0
        self.running = True

    async def run(self) -> None:
        """Reads until stopped; on a dropped socket reconnects with backoff and resumes."""
        delay = 0.05
        while self.running:
            query = f"token={self.token}"
            if self.position:
                query += f"&since={self.position['offset']}&epoch={self.position['epoch']}"
            try:
                conn = await websocket_connect(f"{self.ws_url}?{query}", connect_timeout=5)
            except Exception:  # noqa: BLE001 - the proxy or a node refused: back off, retry
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
                continue
            delay = 0.05
            self.connections += 1
            await self._read(conn)
            conn.close()
            if self.running:
                self.node_lost += 1

    async def _read(self, conn) -> None:
        """Takes the welcome (and its recovery outcome), then every alert until the close."""
        welcome = await conn.read_message()
        if welcome is None:
            return
        data = json.loads(welcome)["data"]
        if self.position:
            self.seq.resumed(data)
        self.position = {"epoch": data["epoch"], "offset": data["offset"]}
        while self.running:
            message = await conn.read_message()
            if message is None:
                return
            event = json.loads(message)
            if event.get("type") != "system.alert":
                continue
            self.seq.add(int(event["data"]["metadata"]["seq"]), event["offset"])
            self.position["offset"] = event["offset"]


def _create_admin(cluster: LocalCluster) -> None:
    """Creates the admin account with the command line on the cluster's database."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), "create-admin",
         f"--email={ADMIN['email']}", f"--password={ADMIN['password']}",
         f"--database-url={cluster.database_url}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


async def _wait(condition, timeout: float) -> bool:
    """Polls condition every 50 ms until it holds or timeout passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


@pytest.mark.gen_test(timeout=180)
async def test_client_through_nginx_recovers_exactly_when_its_node_is_killed(make_cluster):
    """Clients spread by nginx over 3 nodes; the node of some of them is SIGKILLed while
    numbered broadcasts flow: they reconnect through nginx to a survivor and every client
    has every acknowledged number once, in order, with every resume recovered."""
    cluster = make_cluster(3, "--rate-limits=off")
    _create_admin(cluster)
    base = cluster.url
    status, body = await _call(base, "POST", "/api/v1/auth/login", ADMIN)
    assert status == 200, body
    admin = body["data"]["access_token"]
    status, body = await _call(base, "POST", "/api/v1/auth/register", {
        "name": "Listener", "email": "listener@example.com", "password": "password123"})
    assert status == 201, body
    token = body["data"]["access_token"]
    listeners = [Listener(base.replace("http", "ws") + "/ws", token) for _ in range(12)]
    tasks = [asyncio.ensure_future(x.run()) for x in listeners]
    assert await _wait(lambda: all(x.position for x in listeners), 20)
    acked: list[int] = []

    async def publish(numbers: range) -> None:
        for n in numbers:
            code, _ = await _call(base, "POST", "/ws/broadcast", {
                "message": "numbered", "metadata": {"seq": n}}, admin)
            if code == 200:
                acked.append(n)
            await asyncio.sleep(0.02)

    try:
        await publish(range(0, 40))
        victim = cluster.nodes[0]
        victim.kill()
        await publish(range(40, 120))
        assert await _wait(lambda: all(x.seq.seen and x.seq.seen[-1] >= acked[-1]
                                       for x in listeners), 30), \
            [x.seq.seen[-3:] for x in listeners]
    finally:
        for x in listeners:
            x.running = False
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    moved = [x for x in listeners if x.node_lost]
    assert moved, "no client was on the killed node (least_conn spreads 12 over 3 nodes)"
    assert len(acked) >= 110, f"only {len(acked)} of 120 broadcasts were acknowledged"
    for x in listeners:
        got = set(x.seq.seen)
        missing = sorted(set(acked) - got)
        assert not missing, f"gap: {missing[:5]} (client moved: {bool(x.node_lost)})"
        assert len(got) == len(x.seq.seen), "duplicate"  # Sequence.add also refuses these
        assert x.seq.not_recovered == 0
    assert sum(x.seq.recovered for x in moved) >= len(moved)


@pytest.mark.gen_test(timeout=120)
async def test_sse_through_nginx_arrives_event_by_event_and_resumes(make_cluster):
    """Through nginx (buffering off for /sse) each broadcast reaches an SSE listener as it
    is sent, not when a buffer fills; a reconnect with the last id gets what it missed."""
    from sseutil import open_sse

    cluster = make_cluster(2, "--rate-limits=off")
    _create_admin(cluster)
    base = cluster.url
    status, body = await _call(base, "POST", "/api/v1/auth/login", ADMIN)
    assert status == 200, body
    admin = body["data"]["access_token"]
    sse = await open_sse(base, admin)
    assert sse.status == 200 and sse.headers["content-type"].startswith("text/event-stream")
    await sse.wait(lambda s: s.of_type("recovery"), what="recovery through nginx")

    def seen(client) -> list[int]:
        return [e.data["data"]["metadata"]["seq"] for e in client.of_type("system.alert")]

    for n in range(3):  # one at a time: each must arrive before the next is sent
        code, _ = await _call(base, "POST", "/ws/broadcast",
                              {"message": "numbered", "metadata": {"seq": n}}, admin)
        assert code == 200
        await sse.wait(lambda s, n=n: seen(s) == list(range(n + 1)), timeout=5,
                       what=f"alert {n} before the next one")
    sse.close()
    for n in range(3, 6):
        await _call(base, "POST", "/ws/broadcast",
                    {"message": "numbered", "metadata": {"seq": n}}, admin)
    again = await open_sse(base, admin, last_id=sse.last_id)
    await again.wait(lambda s: s.of_type("recovery"))
    assert seen(again) == [3, 4, 5]
    again.close()
