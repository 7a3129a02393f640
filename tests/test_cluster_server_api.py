"""The server API in a cluster: a notify through one node reaches clients on another once, an
Idempotency-Key holds across nodes, a disconnect and a key revocation reach every node."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from cluster import Nodes, Socket, login, need_redis, register
from conftest import TEST_SECRET
from serverproc import ROOT
from tornado.httpclient import AsyncHTTPClient, HTTPRequest


@pytest.fixture
def nodes(tmp_path):
    """Two nodes on the machine's Redis, one SQLite database, an admin."""
    cluster = Nodes(tmp_path, need_redis())
    cluster.create_admin()
    cluster.start()
    cluster.start()
    yield cluster
    cluster.stop()


def cli(nodes: Nodes, *args: str) -> subprocess.CompletedProcess:
    """Runs `main.py api-key ...` against the cluster's database."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "api-key", *args,
                           f"--data-dir={nodes.data}"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "JWT_SECRET": TEST_SECRET}, timeout=60)


async def server(port: int, path: str, body, key: str, idem: str | None = None):
    """POSTs to a node's server API; returns (status, parsed body)."""
    headers = {"X-API-Key": key, "Content-Type": "application/json",
               **({"Idempotency-Key": idem} if idem else {})}
    response = await AsyncHTTPClient().fetch(HTTPRequest(
        f"http://127.0.0.1:{port}{path}", method="POST", body=json.dumps(body),
        headers=headers), raise_error=False)
    return response.code, json.loads(response.body)


async def until_refused(port: int, key: str, timeout: float) -> float:
    """Calls notify until the key is refused; returns how long it took."""
    started = time.monotonic()
    while True:
        status, body = await server(port, "/api/v1/server/notify",
                                    {"type": "app.probe", "data": {}, "role": "superadmin"}, key)
        if status == 401:
            assert body["error"]["code"] == "invalid_api_key"
            return time.monotonic() - started
        assert status == 200, body
        assert time.monotonic() - started < timeout, "the revoked key still works"
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=120)
async def test_notify_on_one_node_reaches_clients_on_every_node_once_even_when_retried(nodes):
    """A notify through A reaches the user's tabs on A and B once; retried on B with the same
    Idempotency-Key it answers the same offset and nobody hears it twice."""
    made = cli(nodes, "create", "--name", "billing", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["key"]
    a, b = (n.port for n in nodes.nodes)
    user = await register(a, "Ann")
    tab_a, tab_b = Socket("A"), Socket("B")
    await tab_a.open(a, user["access_token"])
    await tab_b.open(b, user["access_token"])
    body = {"type": "app.invoice", "data": {"total": 12}, "user_id": user["user"]["id"]}
    status, first = await server(a, "/api/v1/server/notify", body, key, idem="inv-1")
    assert status == 200, first
    status, again = await server(b, "/api/v1/server/notify", body, key, idem="inv-1")
    assert status == 200 and again["data"] == first["data"]
    status, other = await server(b, "/api/v1/server/notify", {**body, "data": {"total": 13}},
                                 key, idem="inv-2")
    for tab in (tab_a, tab_b):
        await tab.wait(lambda s: len(s.of_type("app.invoice")) >= 2, what="two invoices")
    await asyncio.sleep(0.5)
    for tab in (tab_a, tab_b):
        got = tab.of_type("app.invoice")
        assert [e["data"]["total"] for e in got] == [12, 13], got
        assert [e["offset"] for e in got] == [first["data"]["offset"], other["data"]["offset"]]
        tab.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_key_revoked_on_one_node_is_refused_on_the_other(nodes):
    """Revoked over REST on A, refused on B at once (the broker carries it); revoked from
    the command line, refused everywhere within the 5 s cache."""
    a, b = (n.port for n in nodes.nodes)
    admin = (await login(a))["access_token"]
    response = await AsyncHTTPClient().fetch(HTTPRequest(
        f"http://127.0.0.1:{a}/api/v1/admin/api-keys", method="POST",
        body=json.dumps({"name": "svc", "scopes": ["notify"]}),
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}))
    made = json.loads(response.body)["data"]
    status, answer = await server(b, "/api/v1/server/notify",
                                  {"type": "app.x", "data": {}, "all": True}, made["key"])
    assert status == 200, answer  # B has verified (and cached) the key
    await AsyncHTTPClient().fetch(HTTPRequest(
        f"http://127.0.0.1:{a}/api/v1/admin/api-keys/{made['id']}", method="DELETE",
        headers={"Authorization": f"Bearer {admin}"}))
    assert await until_refused(b, made["key"], timeout=1.0) < 1.0
    created = json.loads(cli(nodes, "create", "--name", "cron", "--json").stdout)
    for port in (a, b):
        status, _ = await server(port, "/api/v1/server/notify",
                                 {"type": "app.x", "data": {}, "all": True}, created["key"])
        assert status == 200
    assert cli(nodes, "revoke", str(created["id"])).returncode == 0
    for port in (a, b):
        assert await until_refused(port, created["key"], timeout=6.0) < 6.0


@pytest.mark.gen_test(timeout=120)
async def test_disconnect_through_one_node_closes_the_users_sockets_on_every_node(nodes):
    """Every socket of the user closes with 1008 "disconnected by server", wherever it is."""
    key = json.loads(cli(nodes, "create", "--name", "ops", "--json").stdout)["key"]
    a, b = (n.port for n in nodes.nodes)
    user = await register(a, "Dee")
    tabs = [Socket("A"), Socket("B")]
    await tabs[0].open(a, user["access_token"])
    await tabs[1].open(b, user["access_token"])
    status, body = await server(a, "/api/v1/server/disconnect",
                                {"user_id": user["user"]["id"]}, key)
    assert status == 200 and body["data"] == {"disconnected": 1}
    for tab in tabs:
        await tab.wait(lambda s: s.closed is not None, what="close")
        assert tab.closed == (1008, "disconnected by server")
