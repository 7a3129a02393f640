"""Two real server processes on one Redis and one PostgreSQL: shared presence, /ws/stats of
both nodes, a SIGKILLed node's users leaving once, and one login budget for the cluster."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from conftest import IN_CI, POSTGRES_URL, TEST_SECRET, _run_admin_sql
from redistest import REDIS_URL, delete_prefix, new_prefix, require_redis
from serverproc import ROOT, ServerProcess, call
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

WS_CONNECT_RATE = 6  # per IP per minute, for the whole cluster


class TwoNodes:
    """Two nodes sharing a PostgreSQL schema and a Redis prefix."""

    def __init__(self, tmp_path) -> None:
        require_redis()
        self.schema = f"c_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        try:
            _run_admin_sql(f"CREATE SCHEMA {self.schema}")
        except Exception as exc:
            if IN_CI:
                pytest.fail(f"PostgreSQL not reachable: {exc}")
            pytest.skip(f"PostgreSQL not reachable: {exc}")
        self.prefix = new_prefix()
        self.env = {"DATABASE_URL": POSTGRES_URL, "PGOPTIONS": f"-c search_path={self.schema}",
                    "BROKER": "redis", "REDIS_URL": REDIS_URL, "REDIS_PREFIX": self.prefix,
                    "WS_CONNECT_RATE": str(WS_CONNECT_RATE)}
        self.tmp_path = tmp_path
        self.nodes: list[ServerProcess] = []
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "main.py"), "create-admin",
             "--email=boss@example.com", "--password=adminpass1",
             f"--data-dir={tmp_path / 'admin'}"],
            cwd=ROOT, env={**os.environ, "JWT_SECRET": TEST_SECRET, **self.env},
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        for name in ("a", "b"):
            run_dir = tmp_path / name
            run_dir.mkdir()
            self.nodes.append(ServerProcess(str(run_dir), env=self.env))

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        _run_admin_sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        delete_prefix(self.prefix)


@pytest.fixture
def cluster(tmp_path):
    nodes = TwoNodes(tmp_path)
    yield nodes
    nodes.close()


async def token_for(port: int, email: str, password: str, name: str = "") -> dict[str, Any]:
    """Registers (when a name is given) or logs in; returns the token bundle."""
    if name:
        status, body = await call(port, "POST", "/api/v1/auth/register",
                                  {"name": name, "email": email, "password": password})
        assert status == 201, body
    else:
        status, body = await call(port, "POST", "/api/v1/auth/login",
                                  {"email": email, "password": password})
        assert status == 200, body
    return body["data"]


class Socket:
    """A WebSocket client that records every event it receives."""

    def __init__(self) -> None:
        self.conn = None
        self.events: list[dict[str, Any]] = []
        self.replies: dict[int, dict[str, Any]] = {}
        self._ids = iter(range(1, 1 << 30))
        self._reader: asyncio.Task | None = None

    async def open(self, port: int, token: str) -> Socket:
        self.conn = await websocket_connect(f"ws://127.0.0.1:{port}/ws?token={token}")
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        while True:
            raw = await self.conn.read_message()
            if raw is None:
                return
            frame = json.loads(raw)
            if frame["type"] in ("reply", "error") and "id" in frame:
                self.replies[frame["id"]] = frame
            else:
                self.events.append(frame)

    async def request(self, verb: str, data: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        await self.conn.write_message(json.dumps({"id": request_id, "type": verb, "data": data}))
        await until(lambda: request_id in self.replies, 10, f"reply to {verb}")
        return self.replies[request_id]

    def of(self, type_: str, user_id: int) -> list[dict[str, Any]]:
        return [e for e in self.events
                if e["type"] == type_ and e["data"].get("user_id") == user_id]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_presence_and_stats_span_nodes_and_a_killed_nodes_user_leaves_once(cluster):
    """A user on node a, an admin on node b: the presence verb on b lists both, /ws/stats on
    either lists both nodes; after SIGKILL of a, the admin gets presence.left and
    user.offline for the user exactly once each, within 30 s, and a drops out of nodes."""
    a, b = cluster.nodes
    admin = await token_for(b.port, "boss@example.com", "adminpass1")
    user = await token_for(a.port, "xena@example.com", "password123", name="Xena")
    user_id = user["user"]["id"]
    watcher = await Socket().open(b.port, admin["access_token"])
    xena = await Socket().open(a.port, user["access_token"])
    try:
        assert (await watcher.request("subscribe", {"channel": "room:lobby"}))["type"] == "reply"
        assert (await xena.request("subscribe", {"channel": "room:lobby"}))["type"] == "reply"

        members: list[dict[str, Any]] = []

        async def listed() -> bool:
            nonlocal members
            members = (await watcher.request("presence", {"channel": "room:lobby"}))["data"][
                "members"]
            return {m["user_id"] for m in members} == {admin["user"]["id"], user_id}

        deadline = time.monotonic() + 10
        while not await listed():
            assert time.monotonic() < deadline, members
            await asyncio.sleep(0.2)
        assert [m["connections"] for m in members if m["user_id"] == user_id] == [1]
        # Announced on node a, delivered on node b through the broker: once each.
        await until(lambda: watcher.of("presence.joined", user_id)
                    and watcher.of("user.online", user_id), 10, "Xena's join on node b")

        async def stats(port: int) -> dict[str, Any]:
            status, body = await call(port, "GET", "/ws/stats", token=admin["access_token"])
            assert status == 200, body
            return body

        for port in (a.port, b.port):
            deadline = time.monotonic() + 10
            # The other node's entry is at most a heartbeat (1 s) old.
            while (body := await stats(port))["total_clients"] < 2:
                assert time.monotonic() < deadline, body
                await asyncio.sleep(0.2)
            assert len(body["nodes"]) == 2
            assert body["total_clients"] == 2 == sum(n["total_clients"] for n in body["nodes"])
            assert sorted(n["total_clients"] for n in body["nodes"]) == [1, 1]
            assert body["unique_users"] == 2

        a.proc.kill()
        killed = time.monotonic()
        a.proc.wait(10)
        await until(lambda: watcher.of("presence.left", user_id)
                    and watcher.of("user.offline", user_id), 30, "Xena to leave")
        took = time.monotonic() - killed
        await asyncio.sleep(3)  # a second announcement (another sweeper) would show up here
        (left,) = watcher.of("presence.left", user_id)
        assert left["channel"] == "room:lobby" and left["data"]["name"] == "Xena"
        assert len(watcher.of("user.offline", user_id)) == 1
        assert len(watcher.of("presence.joined", user_id)) == 1
        assert len(watcher.of("user.online", user_id)) == 1
        assert took < 30, took
        deadline = time.monotonic() + 10
        while len((body := await stats(b.port))["nodes"]) != 1:
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.5)
        assert body["total_clients"] == 1
        members = (await watcher.request("presence", {"channel": "room:lobby"}))["data"]["members"]
        assert [m["user_id"] for m in members] == [admin["user"]["id"]]
    finally:
        watcher.close()
        xena.close()


@pytest.mark.slow
@pytest.mark.gen_test(timeout=60)
async def test_a_tab_moving_to_the_other_node_within_the_grace_does_not_flap(cluster):
    """Yan's only tab closes on node a and reopens on node b within a second: the admin sees
    one join and one user.online, and no leave or offline, past the 5 s grace."""
    a, b = cluster.nodes
    admin = await token_for(a.port, "boss@example.com", "adminpass1")
    user = await token_for(a.port, "yan@example.com", "password123", name="Yan")
    user_id = user["user"]["id"]
    watcher = await Socket().open(a.port, admin["access_token"])
    tab = await Socket().open(a.port, user["access_token"])
    moved = None
    try:
        assert (await watcher.request("subscribe", {"channel": "room:lobby"}))["type"] == "reply"
        assert (await tab.request("subscribe", {"channel": "room:lobby"}))["type"] == "reply"
        await until(lambda: watcher.of("presence.joined", user_id)
                    and watcher.of("user.online", user_id), 10, "Yan's join")
        tab.close()
        await asyncio.sleep(0.5)
        moved = await Socket().open(b.port, user["access_token"])
        assert (await moved.request("subscribe", {"channel": "room:lobby"}))["type"] == "reply"
        await asyncio.sleep(7)  # past the grace, and a sweep or two
        kinds = ("presence.joined", "presence.left", "user.online", "user.offline")
        assert [len(watcher.of(kind, user_id)) for kind in kinds] == [1, 0, 1, 0]
        members = (await watcher.request("presence", {"channel": "room:lobby"}))["data"]["members"]
        assert [(m["user_id"], m["connections"]) for m in members
                if m["user_id"] == user_id] == [(user_id, 1)]
    finally:
        for conn in (watcher, tab, moved):
            if conn is not None:
                conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_login_and_connect_budgets_are_shared_by_both_nodes(cluster):
    """5 wrong passwords for one account from one address, alternating nodes: the 6th attempt
    is refused with 429 on either node, though each node saw only 2 or 3. The same for
    WebSocket connection attempts: 6 per minute from one address, cluster-wide."""
    a, b = cluster.nodes
    user = await token_for(a.port, "yan@example.com", "password123", name="Yan")
    sockets = [await Socket().open((a, b)[i % 2].port, user["access_token"])
               for i in range(WS_CONNECT_RATE)]
    for node in (a, b):
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(f"ws://127.0.0.1:{node.port}/ws?token="
                                    + user["access_token"])
        assert refused.value.code == 429
    for socket in sockets:
        socket.close()
    for i in range(5):
        status, body = await call((a, b)[i % 2].port, "POST", "/api/v1/auth/login",
                                  {"email": "yan@example.com", "password": "wrongpass1"})
        assert status == 401, body
    for node in (a, b):
        status, body = await call(node.port, "POST", "/api/v1/auth/login",
                                  {"email": "yan@example.com", "password": "password123"})
        assert status == 429, body
        assert body["error"]["code"] == "rate_limited"
