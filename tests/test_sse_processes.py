"""SSE across real processes: a listener resumes after a SIGTERM restart with every event
counted, and in a cluster (Redis broker) a listener on one node hears what another node
publishes and resumes on the other node without a gap or a duplicate."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cluster import Nodes, need_redis, register
from conftest import TEST_SECRET
from serverproc import ROOT, ServerProcess, call
from sseutil import open_sse

ADMIN = {"email": "boss@example.com", "password": "adminpass1"}


def create_admin(data: str) -> None:
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), "create-admin",
         f"--email={ADMIN['email']}", f"--password={ADMIN['password']}", f"--data-dir={data}"],
        cwd=ROOT, env={**os.environ, "JWT_SECRET": TEST_SECRET}, capture_output=True,
        text=True, timeout=60)
    assert result.returncode == 0, result.stderr


async def admin_token(port: int) -> str:
    status, body = await call(port, "POST", "/api/v1/auth/login", ADMIN)
    assert status == 200, body
    return body["data"]["access_token"]


async def broadcast(port: int, token: str, numbers) -> None:
    for n in numbers:
        status, body = await call(port, "POST", "/ws/broadcast", {"message": str(n)}, token)
        assert status == 200, body


async def say(port: int, token: str, numbers) -> None:
    for n in numbers:
        status, body = await call(port, "POST", "/api/v1/rooms/lobby/messages",
                                  {"data": {"n": n}}, token)
        assert status == 201, body


def alerts(sse) -> list[int]:
    return [int(e.data["data"]["message"]) for e in sse.of_type("system.alert")]


def said(sse) -> list[int]:
    return [e.data["data"]["body"]["n"] for e in sse.of_type("channel.message")]


@pytest.mark.gen_test(timeout=120)
async def test_a_listener_resumes_after_a_sigterm_restart_with_nothing_lost(tmp_path):
    """Before the restart 1-5; during it the stream ends; after it 6-10 are published and
    the listener, reconnecting with its last id, gets exactly 6-10 in each stream."""
    data = str(tmp_path / "data")
    create_admin(data)
    server = ServerProcess(str(tmp_path), "--rate-limits=off")
    port = server.port
    try:
        admin = await admin_token(port)
        user = await register(port, "Lis")
        token = user["access_token"]
        sse = await open_sse(f"http://127.0.0.1:{port}", token, "room:lobby")
        await broadcast(port, admin, range(1, 6))
        await say(port, token, range(1, 6))
        await sse.wait(lambda s: alerts(s) == [1, 2, 3, 4, 5] and said(s) == [1, 2, 3, 4, 5])
        server.stop()  # SIGTERM: the stream ends with `close` 1001
        await sse.wait(lambda s: s.closed, what="the end of the stream")
        assert sse.of_type("close")[0].data["data"]["code"] == 1001
    finally:
        server.stop()
    server = ServerProcess(str(tmp_path), "--rate-limits=off", port=port)
    try:
        port = server.port
        admin = await admin_token(port)
        await broadcast(port, admin, range(6, 11))
        await say(port, token, range(6, 11))
        again = await open_sse(f"http://127.0.0.1:{port}", token, "room:lobby",
                               last_id=sse.last_id)
        await again.wait(lambda s: s.of_type("recovery"))
        assert alerts(again) == [6, 7, 8, 9, 10] and said(again) == [6, 7, 8, 9, 10]
        assert [s["recovered"] for s in again.of_type("recovery")[0].data["data"]["streams"]] \
            == [True, True]
        again.close()
    finally:
        server.stop()


@pytest.fixture
def nodes(tmp_path):
    cluster = Nodes(tmp_path, need_redis())
    cluster.create_admin()
    cluster.start()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.mark.gen_test(timeout=120)
async def test_in_a_cluster_a_listener_hears_every_node_and_resumes_on_another(nodes):
    """A listener on B gets alerts and room messages published through A, once each; cut
    off and reconnected to A with its last id, it gets exactly what it missed."""
    a, b = (n.port for n in nodes.nodes)
    admin = await admin_token(a)
    user = await register(a, "Clu")
    token = user["access_token"]
    sse = await open_sse(f"http://127.0.0.1:{b}", token, "room:lobby")
    await sse.wait(lambda s: s.of_type("recovery"))
    await broadcast(a, admin, range(1, 4))
    await say(a, token, range(1, 4))
    await sse.wait(lambda s: alerts(s) == [1, 2, 3] and said(s) == [1, 2, 3])
    sse.close()
    await broadcast(b, admin, range(4, 7))
    await say(b, token, range(4, 7))
    again = await open_sse(f"http://127.0.0.1:{a}", token, "room:lobby", last_id=sse.last_id)
    await again.wait(lambda s: s.of_type("recovery"))
    assert alerts(again) == [4, 5, 6] and said(again) == [4, 5, 6]
    stats = (await call(a, "GET", "/ws/stats", token=admin))[1]
    assert stats["by_transport"]["sse"] >= 1
    again.close()
