"""Webhooks with the server as real processes: a SIGKILL between recording and delivery loses
nothing, and two nodes sharing one SQLite file and one Redis deliver each event once, the
survivor reporting a killed node's sockets as closed (`node lost`)."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter

import pytest
from cluster import Nodes, Socket, need_redis, register
from hookapp import HookApp
from serverproc import ServerProcess, call, wait_for

from auth.signature import verify

SECRET = "webhook-secret-for-the-tests"
ROOM = "room:lobby"


def stored(data_dir: str) -> Counter:
    """Counts the webhook rows in a server's SQLite file by type."""
    conn = sqlite3.connect(os.path.join(data_dir, "app.db"), timeout=5)
    try:
        return Counter(t for (t,) in conn.execute("SELECT type FROM webhooks"))
    finally:
        conn.close()


def assert_once_each(app: HookApp) -> None:
    """Every webhook id the application accepted, it accepted once; all were signed."""
    counts = Counter(body["id"] for body in app.delivered())
    assert counts and max(counts.values()) == 1, counts.most_common(3)
    assert all(verify(SECRET, r.raw, r.signature) for r in app.webhooks)


async def chat(port: int, name: str, messages: int) -> tuple[Socket, dict]:
    """Registers a user on a node, opens a socket, joins the lobby and publishes messages
    {name, n} (waiting for each reply); returns the socket and the user."""
    user = await register(port, name)
    sock = Socket(name)
    await sock.open(port, user["access_token"])
    reply = await sock.request("subscribe", {"channel": ROOM})
    assert reply["type"] == "reply", reply
    for n in range(messages):
        reply = await sock.request("publish", {"channel": ROOM, "data": {"who": name, "n": n}})
        assert reply["type"] == "reply", reply
    return sock, user


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_events_recorded_before_a_sigkill_are_delivered_after_the_restart(tmp_path):
    """The application is down; the server records a connection, its presence and five
    messages, and is SIGKILLed before delivering. Restarted, it delivers each once, and
    reports the socket the dead process held as closed with the reason `node lost`."""
    app = HookApp()  # not listening yet: every attempt is refused
    args = (f"--webhook-url={app.webhook_url}", f"--hook-secret={SECRET}",
            "--webhook-retry-cap=1", "--rate-limits=off")
    data = str(tmp_path / "data")
    first = ServerProcess(str(tmp_path), *args)
    try:
        sock, user = await chat(first.port, "Kim", 5)
        want = {"connection.opened": 1, "presence.joined": 1, "channel.message": 5}
        assert wait_for(lambda: stored(data) == Counter(want), 10), stored(data)
        first.proc.kill()  # SIGKILL: no close, no flush
        first.proc.wait(10)
    finally:
        first.stop()
    sock.close()
    app.start()
    os.makedirs(tmp_path / "second")
    second = ServerProcess(str(tmp_path / "second"), f"--data-dir={data}", *args)
    try:
        await app.wait(lambda: len(app.delivered()) == 8, timeout=30)
        assert_once_each(app)
        bodies = {b["type"]: b for b in app.delivered()}
        assert [m["data"]["body"]["n"] for m in app.delivered("channel.message")] == \
            list(range(5))
        closed, opened = bodies["connection.closed"], bodies["connection.opened"]
        assert closed["data"]["reason"] == "node lost"
        assert closed["data"]["client_id"] == opened["data"]["client_id"] == \
            sock.welcome["client_id"]
        assert closed["data"]["user_id"] == user["user"]["id"]
        assert closed["node"] == opened["node"]  # the node the socket was on
        assert wait_for(lambda: not stored(data), 10), stored(data)
    finally:
        second.stop()
        await app.stop()


@pytest.mark.slow
@pytest.mark.gen_test(timeout=180)
async def test_two_nodes_deliver_each_event_once_and_report_a_killed_nodes_sockets(tmp_path):
    """Two nodes (one SQLite file, one Redis) record and deliver together: every event is
    accepted once, by one node or the other; each node's messages keep their order. When one
    node is SIGKILLed, the other reports its socket closed (`node lost`) and its user leaving."""
    app = HookApp()
    app.start()
    nodes = Nodes(tmp_path, need_redis(), f"--webhook-url={app.webhook_url}",
                  f"--hook-secret={SECRET}", "--webhook-retry-cap=1")
    nodes.create_admin()
    try:
        one, two = nodes.start(), nodes.start()
        a, user_a = await chat(one.port, "Ada", 10)
        b, user_b = await chat(two.port, "Bea", 10)
        await app.wait(lambda: len(app.delivered("channel.message")) == 20, timeout=30)
        messages = [m["data"]["body"] for m in app.delivered("channel.message")]
        for who in ("Ada", "Bea"):
            assert [m["n"] for m in messages if m["who"] == who] == list(range(10))
        await app.wait(lambda: len(app.delivered("presence.joined")) == 2)
        delivered = 0
        for node in (one, two):
            status, stats = await call(node.port, "GET", "/ws/stats",
                                       token=await admin_token(node.port))
            assert status == 200, stats
            delivered += stats["webhooks"]["delivered"]
        assert delivered == len(app.delivered())  # each accepted event sent by one node
        one.proc.kill()
        one.proc.wait(10)
        def lost() -> list[dict]:
            return [c for c in app.delivered("connection.closed")
                    if c["data"].get("reason") == "node lost"]

        await app.wait(lambda: len(lost()) == 1, timeout=60)
        assert lost()[0]["data"]["client_id"] == a.welcome["client_id"]
        await app.wait(lambda: any(p["data"]["user_id"] == user_a["user"]["id"]
                                   for p in app.delivered("presence.left")), timeout=30)
        assert_once_each(app)
        assert user_b["user"]["id"] not in {p["data"]["user_id"]
                                            for p in app.delivered("presence.left")}
        a.close()
        b.close()
    finally:
        nodes.stop()
        await app.stop()


async def admin_token(port: int) -> str:
    """Logs the admin made by Nodes.create_admin() in on a node; returns its access token."""
    status, body = await call(port, "POST", "/api/v1/auth/login",
                              {"email": "boss@example.com", "password": "adminpass1"})
    assert status == 200, body
    return body["data"]["access_token"]
