"""Recovery across real server restarts: SIGKILL while events are being produced, rows
committed but never published, then a clean SIGTERM restart (SQLite and PostgreSQL).

Clients either recover exactly (every committed event once, in order) or are told
recovered false; after a clean restart they always recover exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from conftest import POSTGRES_URL, TEST_SECRET, _run_admin_sql
from seqcheck import Sequence
from serverproc import ROOT, ServerProcess, call
from tornado.websocket import websocket_connect

from hub import feed
from models import db as dbmod
from models.db import open_database, write_tx
from services.outbox import stage

NOISE = ("user.online", "user.offline", "user.created")


class Cluster:
    """One data store and the successive server processes that serve it."""

    def __init__(self, tmp_path, backend: str) -> None:
        self.tmp_path, self.backend = tmp_path, backend
        self.data = str(tmp_path / "data")
        self.env: dict[str, str] = {}
        self.url = "sqlite:///" + os.path.join(self.data, "app.db")
        if backend == "postgresql":
            self.schema = f"r_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            try:
                _run_admin_sql(f"CREATE SCHEMA {self.schema}")
            except Exception as exc:
                pytest.skip(f"PostgreSQL not reachable: {exc}")
            self.url = POSTGRES_URL
            self.env = {"DATABASE_URL": POSTGRES_URL, "PGOPTIONS": f"-c search_path={self.schema}"}
        self.runs = 0
        self.server: ServerProcess | None = None

    def start(self) -> ServerProcess:
        """Starts a server process on the same data; returns it once it answers /health."""
        self.runs += 1
        run_dir = self.tmp_path / f"run{self.runs}"
        run_dir.mkdir()
        self.server = ServerProcess(str(run_dir), f"--data-dir={self.data}", "--rate-limits=off",
                                    env=self.env)
        return self.server

    def create_admin(self) -> None:
        """Creates the admin account with the command line, before any server runs."""
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "main.py"), "create-admin",
             "--email=boss@example.com", "--password=adminpass1", f"--data-dir={self.data}"],
            cwd=ROOT, env={**os.environ, "JWT_SECRET": TEST_SECRET, **self.env},
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr

    def commit_without_publishing(self, numbers: list[int]) -> None:
        """Commits system.alert outbox rows as a request would, but never hands them to a
        relay (the process died between commit and publish)."""
        database = open_database(self.url)
        if self.backend == "postgresql":
            database.connect_params["options"] = f"-c search_path={self.schema}"
        dbmod.db.initialize(database)
        with dbmod.db.connection_context(), write_tx():
            for n in numbers:
                stage(feed.system_alert(str(n), "normal", {}, 1))
        database.close()

    def close(self) -> None:
        """Stops the server and drops the PostgreSQL schema."""
        if self.server is not None:
            self.server.stop()
        if self.backend == "postgresql":
            _run_admin_sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


class Reader:
    """A resuming client that checks the sequence of numbered alerts it receives."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.position: dict[str, str] = {}
        self.seq = Sequence()
        self.conn = None
        self.outcomes: list[dict[str, Any]] = []

    async def connect(self, port: int) -> dict[str, Any]:
        query = f"token={self.token}"
        if self.position:
            query += f"&since={self.position['offset']}&epoch={self.position['epoch']}"
        self.conn = await websocket_connect(f"ws://127.0.0.1:{port}/ws?{query}")
        welcome = json.loads(await asyncio.wait_for(self.conn.read_message(), 20))
        assert welcome["type"] == "connection.established", welcome
        data = welcome["data"]
        if self.position:
            self.seq.resumed(data)
            self.outcomes.append(data)
        self.position = {"epoch": data["epoch"], "offset": data["offset"]}
        return data

    async def read_until(self, number: int, timeout: float = 30.0) -> None:
        """Reads alerts until `number` arrived (or the socket closes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.seq.seen or self.seq.seen[-1] < number:
            message = await asyncio.wait_for(self.conn.read_message(),
                                             max(0.1, deadline - loop.time()))
            if message is None:
                return
            event = json.loads(message)
            if event["type"] in NOISE:
                continue
            assert event["type"] == "system.alert", event
            self.seq.add(int(event["data"]["message"]), event["offset"])
            self.position["offset"] = event["offset"]

    async def drain(self) -> None:
        """Reads until the dead server's socket is closed."""
        while self.conn is not None and await self.conn.read_message() is not None:
            pass


class Producer:
    """Broadcasts numbered alerts one after another; knows which ones surely committed."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.next = 0
        self.confirmed: list[int] = []
        self.maybe: list[int] = []

    async def send(self, port: int, count: int, kill=None) -> None:
        """Sends count alerts; `kill(i)` may stop the server before the i-th send."""
        for i in range(count):
            if kill is not None and kill(i):
                return
            n, self.next = self.next, self.next + 1
            try:
                status, body = await call(port, "POST", "/ws/broadcast", {"message": str(n)},
                                          self.token)
            except OSError:
                self.maybe.append(n)
                continue
            (self.confirmed if status == 200 else self.maybe).append(n)


def check(reader: Reader, producer: Producer, exact: bool) -> None:
    """Each number arrived at most once, in order, only if it was produced; when `exact`,
    every confirmed one arrived."""
    received = set(reader.seq.seen)
    assert received <= set(producer.confirmed) | set(producer.maybe)
    if exact:
        missing = set(producer.confirmed) - received
        assert not missing, f"gap: {sorted(missing)[:5]}"


@pytest.mark.gen_test(timeout=240)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_sigkill_then_clean_restart_never_gaps_or_duplicates(tmp_path, backend):
    """SIGKILL mid-stream: a client that saw only durable events recovers exactly, the other
    recovers exactly or is told recovered false; rows committed but never published are
    published once on start; after a SIGTERM restart everyone recovers exactly."""
    cluster = Cluster(tmp_path, backend)
    try:
        cluster.create_admin()
        server = cluster.start()
        status, body = await call(server.port, "POST", "/api/v1/auth/login",
                                  {"email": "boss@example.com", "password": "adminpass1"})
        assert status == 200, body
        admin = body["data"]["access_token"]
        status, body = await call(server.port, "POST", "/api/v1/auth/register", {
            "name": "Reader", "email": "reader@example.com", "password": "password123"})
        assert status == 201, body
        token = body["data"]["access_token"]
        live, early, producer = Reader(token), Reader(token), Producer(admin)
        await live.connect(server.port)
        await early.connect(server.port)
        await producer.send(server.port, 10)
        await early.read_until(producer.confirmed[-1])
        early.conn.close()  # away from here on: its position is long durable
        await producer.send(server.port, 20)
        reading = asyncio.ensure_future(live.read_until(10**9, timeout=120))
        # SIGKILL while alerts are in flight: the 6th send finds the server gone.
        await producer.send(server.port, 10, kill=lambda i: i == 5 and server.proc.kill())
        server.proc.wait(10)
        await asyncio.wait_for(reading, 30)
        committed = list(range(producer.next, producer.next + 3))
        cluster.commit_without_publishing(committed)
        producer.confirmed += committed
        producer.next += 3
        server = cluster.start()
        for reader in (live, early):
            await reader.connect(server.port)
        await producer.send(server.port, 10)
        last = producer.confirmed[-1]
        for reader in (live, early):
            await reader.read_until(last)
        assert early.outcomes[-1]["recovered"] is True, early.outcomes
        check(early, producer, exact=True)
        check(live, producer, exact=live.outcomes[-1]["recovered"])
        # A clean restart: every client recovers exactly what was produced meanwhile.
        cluster.server.stop()
        for reader in (live, early):
            await reader.drain()
        server = cluster.start()
        await producer.send(server.port, 10)
        for reader in (live, early):
            welcome = await reader.connect(server.port)
            assert welcome["recovered"] is True and welcome["missed"] == 10, welcome
            await reader.read_until(producer.confirmed[-1])
            assert reader.seq.seen[-10:] == producer.confirmed[-10:]
        check(early, producer, exact=True)
        check(live, producer, exact=live.outcomes[0]["recovered"])
    finally:
        cluster.close()


class RoomClient:
    """A socket that subscribes with its remembered room position and publishes."""

    def __init__(self, token: str) -> None:
        self.token, self.conn, self.position, self.ids = token, None, {}, 0

    async def open(self, port: int) -> None:
        self.conn = await websocket_connect(f"ws://127.0.0.1:{port}/ws?token={self.token}")
        await self.event()  # the welcome

    async def event(self) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.conn.read_message(), 20)
            assert message is not None, "socket closed"
            event = json.loads(message)
            if not event["type"].startswith(("presence.", "user.")):
                return event

    async def request(self, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        await self.conn.write_message(json.dumps({"id": self.ids, "type": type_, "data": data}))
        while True:
            event = await self.event()
            if event.get("id") == self.ids:
                assert event["type"] == "reply", event
                return event["data"]

    async def subscribe(self) -> dict[str, Any]:
        data = {"channel": "room:lobby", **self.position}
        reply = await self.request("subscribe", data)
        self.position = {"since": reply["offset"], "epoch": reply["epoch"]}
        return reply

    async def messages(self, count: int) -> list[int]:
        got = []
        while len(got) < count:
            event = await self.event()
            assert event["type"] == "channel.message", event
            got.append(event["data"]["body"]["n"])
            self.position["since"] = event["offset"]
        return got


@pytest.mark.gen_test(timeout=180)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_rooms_recover_after_a_clean_restart_and_get_a_new_epoch_after_sigkill(
        tmp_path, backend):
    """A room subscriber recovers exactly what was published across a SIGTERM restart; after
    SIGKILL the room's epoch changes and the subscribe reply says recovered false."""
    cluster = Cluster(tmp_path, backend)
    try:
        server = cluster.start()
        tokens = []
        for name in ("writer", "reader"):
            status, body = await call(server.port, "POST", "/api/v1/auth/register", {
                "name": name, "email": f"{name}@example.com", "password": "password123"})
            assert status == 201, body
            tokens.append(body["data"]["access_token"])
        writer, reader = RoomClient(tokens[0]), RoomClient(tokens[1])
        for client in (writer, reader):
            await client.open(server.port)
        await reader.subscribe()
        for n in range(10):
            await writer.request("publish", {"channel": "room:lobby", "data": {"n": n}})
        assert await reader.messages(10) == list(range(10))
        server.stop()  # SIGTERM: stored, then positions saved clean
        server = cluster.start()
        await writer.open(server.port)
        for n in range(10, 15):
            await writer.request("publish", {"channel": "room:lobby", "data": {"n": n}})
        await reader.open(server.port)
        reply = await reader.subscribe()
        assert reply["recovered"] is True and reply["missed"] == 5, reply
        assert await reader.messages(5) == list(range(10, 15))
        epoch = reply["epoch"]
        await writer.request("publish", {"channel": "room:lobby", "data": {"n": 15}})
        assert await reader.messages(1) == [15]
        server.proc.kill()
        server.proc.wait(10)
        server = cluster.start()
        await reader.open(server.port)
        reply = await reader.subscribe()
        assert reply["recovered"] is False and reply["missed"] == 0 and reply["epoch"] != epoch
    finally:
        cluster.close()
