"""Cluster test helpers: Redis (shared or private), nodes as real processes, clients.

Nodes share one SQLite file (WAL, as several processes on one host may) and one Redis under
a prefix unique to the test, so concurrent test runs on one Redis never meet.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from typing import Any

import pytest
from conftest import IN_CI, TEST_SECRET
from serverproc import ROOT, ServerProcess, call, free_port, wait_for
from tornado.websocket import WebSocketClientConnection, websocket_connect

__all__ = ["SHARED_REDIS", "need_redis", "need_redis_server", "PrivateRedis", "Nodes", "call",
           "Socket", "NOISE"]

SHARED_REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Presence and online events are not what these tests count.
NOISE = ("user.online", "user.offline", "presence.joined", "presence.left")


def _ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _absent(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


def need_redis() -> str:
    """Returns the shared Redis URL; skips (fails under CI=true) when it does not answer."""
    if not _ping("127.0.0.1", int(SHARED_REDIS.rsplit(":", 1)[1].split("/")[0])):
        _absent(f"Redis not reachable at {SHARED_REDIS}")
    return SHARED_REDIS


def need_redis_server() -> str:
    """Returns the redis-server executable; skips (fails under CI=true) when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        _absent("redis-server is not installed")
    return path


def redis_cli(url: str, *args: str) -> str:
    """Runs one redis-cli command against url and returns its output."""
    result = subprocess.run(["redis-cli", "-u", url, *args], capture_output=True, text=True,
                            timeout=10)
    return result.stdout.strip()


class PrivateRedis:
    """A redis-server of this test alone, on a free port, without persistence."""

    def __init__(self, tmp_path: Any) -> None:
        self.binary = need_redis_server()
        self.port = free_port()
        self.dir = str(tmp_path)
        os.makedirs(self.dir, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Starts the server (again) on the same port and waits until it answers."""
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        assert wait_for(lambda: _ping("127.0.0.1", self.port), 10), "redis-server did not start"

    def stop(self) -> None:
        """Stops the server (its data is gone: no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Nodes:
    """Server processes sharing one database and one Redis prefix."""

    def __init__(self, tmp_path: Any, redis_url: str, *extra: str) -> None:
        self.tmp_path = tmp_path
        self.data = str(tmp_path / "shared")
        self.redis_url = redis_url
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        self.extra = extra
        self.started = 0
        self.nodes: list[ServerProcess] = []

    def create_admin(self, email: str = "boss@example.com") -> None:
        """Creates an admin with the command line, before any node runs."""
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "main.py"), "create-admin", f"--email={email}",
             "--password=adminpass1", f"--data-dir={self.data}"],
            cwd=ROOT, env={**os.environ, "JWT_SECRET": TEST_SECRET},
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr

    def start(self, *args: str) -> ServerProcess:
        """Starts one more node; returns it once /health answers."""
        self.started += 1
        run_dir = self.tmp_path / f"node{self.started}"
        run_dir.mkdir()
        node = ServerProcess(str(run_dir), f"--data-dir={self.data}", "--rate-limits=off",
                             "--inbound-rate=10000", "--inbound-burst=10000",
                             "--broker=redis", f"--redis-url={self.redis_url}",
                             f"--redis-prefix={self.prefix}", *self.extra, *args)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        """Stops every node and removes this test's keys from the shared Redis. What each
        node logged at WARNING and above (tracebacks included) is printed: pytest shows it
        beside a failure."""
        for node in self.nodes:
            node.stop()
            print(f"--- node on port {node.port}, WARNING and above:\n{troubles(node.log_path)}")
        if self.redis_url == SHARED_REDIS:
            keys = redis_cli(self.redis_url, "--scan", "--pattern", f"{self.prefix}:*").split()
            for start in range(0, len(keys), 500):
                redis_cli(self.redis_url, "DEL", *keys[start:start + 500])


def troubles(path: str, limit: int = 200) -> str:
    """Returns the last `limit` lines of a server log's WARNING, ERROR and CRITICAL records,
    each with the lines that follow it (a traceback)."""
    kept: list[str] = []
    keep = False
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line[:4].isdigit():  # a record's first line starts with its timestamp
                keep = any(level in line for level in (" WARNING ", " ERROR ", " CRITICAL "))
            if keep:
                kept.append(line.rstrip())
    return "\n".join(kept[-limit:])


async def login(port: int, email: str = "boss@example.com",
                password: str = "adminpass1") -> dict[str, Any]:
    """Logs in on a node; returns the login data (tokens and user)."""
    status, body = await call(port, "POST", "/api/v1/auth/login",
                              {"email": email, "password": password})
    assert status == 200, body
    return body["data"]


async def register(port: int, name: str) -> dict[str, Any]:
    """Registers a user on a node; returns the tokens and user."""
    status, body = await call(port, "POST", "/api/v1/auth/register", {
        "name": name, "email": f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com",
        "password": "password123"})
    assert status == 201, body
    return body["data"]


class Socket:
    """A WebSocket client that records every event it receives (noise left out)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.conn: WebSocketClientConnection | None = None
        self.events: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}
        self.closed: tuple[int | None, str | None] | None = None
        self._ids = 0
        self._reader: asyncio.Future | None = None
        self._changed = asyncio.Event()

    async def open(self, port: int, token: str, query: str = "") -> dict[str, Any]:
        """Connects, reads the welcome and starts recording; returns the welcome's data."""
        self.conn = await websocket_connect(f"ws://127.0.0.1:{port}/ws?token={token}{query}")
        welcome = json.loads(await asyncio.wait_for(self.conn.read_message(), 20))
        assert welcome["type"] == "connection.established", welcome
        self.welcome = welcome["data"]
        self.closed = None
        self._reader = asyncio.ensure_future(self._read())
        return self.welcome

    async def _read(self) -> None:
        assert self.conn is not None
        while True:
            message = await self.conn.read_message()
            if message is None:
                self.closed = (self.conn.close_code, self.conn.close_reason)
                self._changed.set()
                return
            event = json.loads(message)
            if event["type"] not in NOISE:
                self.events.append(event)
                self._changed.set()

    async def wait(self, predicate, timeout: float = 20.0, what: str = "") -> None:
        """Waits until predicate(self) holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            assert remaining > 0, f"{self.name}: timed out waiting for {what}: {self.events[-5:]}"
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        """Returns the recorded events of one type."""
        return [e for e in self.events if e["type"] == type_]

    async def request(self, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        """Sends a request and returns its reply or error event."""
        assert self.conn is not None
        self._ids += 1
        request_id = self._ids
        await self.conn.write_message(json.dumps({"id": request_id, "type": type_,
                                                  "data": data}))
        await self.wait(lambda s: any(e.get("id") == request_id for e in s.events),
                        what=f"reply to {type_}")
        return next(e for e in self.events if e.get("id") == request_id)

    def close(self) -> None:
        """Closes the socket."""
        if self.conn is not None:
            self.conn.close()
