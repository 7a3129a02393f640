"""Delivery on real sockets: slow consumers, heartbeats, compression and what a socket keeps."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest
from tornado.httpclient import AsyncHTTPClient
from wsutil import (
    RawClient,
    expect,
    sentinel,
    wait_until,
)

from services.sessions import SessionCache

# -- slow consumer ----------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_slow_consumer_is_dropped_while_healthy_client_gets_every_message(api):
    """A client that stops reading is closed and unregistered; a healthy one receives all."""
    admin = await api.admin()
    user = await api.register()
    healthy = await api.ws(user["access_token"])
    stalled = await RawClient.connect(api, user["access_token"], rcvbuf=4096)
    stalled_id = stalled.client_id  # it never reads again
    assert stalled_id in api.ctx.hub.clients
    received: list[str] = []

    async def read_all() -> None:
        while True:
            message = await healthy.read_message()
            if message is None:
                return
            received.append(json.loads(message)["data"]["message"])

    reader = asyncio.ensure_future(read_all())
    metadata = {"pad": "p" * 15_000}
    sent: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    extra = 5  # keep publishing a few after the drop to show the healthy client is unaffected
    while extra:
        assert loop.time() < deadline, f"stalled client not dropped after {len(sent)} messages"
        text = f"{len(sent):05d}" + "m" * 4000
        status, body, _ = await api.call(
            "POST", "/ws/broadcast", {"message": text, "metadata": metadata},
            admin["access_token"])
        assert status == 200, body
        sent.append(text)
        if stalled_id not in api.ctx.hub.clients:
            extra -= 1
    await wait_until(lambda: len(received) >= len(sent), timeout=10, what="healthy client")
    assert received == sent
    assert api.ctx.hub.get_stats()["slow_consumers_dropped"] == 1
    assert stalled_id not in api.ctx.hub.clients and len(api.ctx.hub.clients) == 1
    healthy.close()
    stalled.close()
    await reader


@pytest.mark.gen_test(timeout=20)
@pytest.mark.settings(ping_interval=0.2, ping_timeout=0.2)
async def test_heartbeat_drops_a_client_that_never_pongs(api):
    """The server pings on --ping-interval; a client silent past --ping-timeout is closed,
    while a client that answers pings (as browsers and Tornado do) stays connected."""
    admin = await api.admin()
    healthy = await api.ws(admin["access_token"])
    mute = await RawClient.connect(api, admin["access_token"])
    pings = 0
    while True:
        opcode, payload = await asyncio.wait_for(mute.read_frame(), 5)
        if opcode == 0x9:  # ping: deliberately not answered
            pings += 1
            continue
        assert opcode == 0x8, (opcode, payload)
        break
    assert pings >= 1
    assert int.from_bytes(payload[:2], "big") == 1000 and payload[2:] == b"ping timed out"
    mute.close()
    await wait_until(lambda: mute.client_id not in api.ctx.hub.clients, what="unregister")
    await sentinel(api, admin["access_token"], healthy)


@pytest.mark.gen_test
@pytest.mark.settings(websocket_compression=True)
async def test_compressed_connection_receives_events(api):
    """With --websocket-compression on, a client that negotiates permessage-deflate still gets
    its events (the per-connection fallback instead of the shared frame)."""
    admin = await api.admin()
    compressed = await api.ws(admin["access_token"], compression_options={})
    plain = await api.ws(admin["access_token"])
    assert compressed.protocol._compressor is not None
    new = await api.register()
    for conn in (compressed, plain):
        assert (await expect(conn, "user.created"))["data"]["user_id"] == new["user"]["id"]
    await sentinel(api, admin["access_token"], compressed, plain)

# -- logging ----------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_token_never_reaches_a_log_line_even_on_a_server_error(api, caplog, monkeypatch):
    """The ?token= value is redacted from the access log and from error logs of a failed /ws."""
    user = await api.register()
    token = user["access_token"]
    caplog.set_level(logging.DEBUG)
    conn = await api.ws(token)
    conn.close()

    def broken(claims):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(api.ctx.auth.session_checks, "many", broken)  # the database check
    # The session was cached by the first socket; this handshake must reach the database.
    monkeypatch.setattr(api.ctx.auth, "sessions", SessionCache(ttl=0))
    response = await AsyncHTTPClient().fetch(f"{api.base_url}/ws?token={token}",
                                             raise_error=False)
    assert response.code == 500
    assert "exploded" not in response.body.decode()
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert "/ws" in logged
    assert token not in logged
    assert token.split(".")[2] not in logged


@pytest.mark.gen_test
async def test_upgraded_socket_keeps_no_handshake_state_or_token(api):
    """Once open, a socket's handler holds no token, request headers or user row."""
    user = await api.register()
    token = user["access_token"]
    conn = await api.ws(token)
    (client,) = api.ctx.hub.clients.values()
    handler = client.conn
    assert handler.principal is None
    assert len(handler.request.headers) == 0 and handler.request.query_arguments == {}
    assert token not in handler.request.uri and "token=REDACTED" in handler.request.uri
    assert "write" not in vars(handler)  # Tornado's per-instance guards were not planted
    await api.call("POST", "/ws/broadcast", {"message": "still works"},
                   (await api.admin())["access_token"])
    assert (await expect(conn, "system.alert"))["data"]["message"] == "still works"


@pytest.mark.gen_test
@pytest.mark.settings(socket_send_buffer=65536)
async def test_socket_send_buffer_is_capped_to_the_configured_size(api):
    """--socket-send-buffer caps SO_SNDBUF on each upgraded socket (Linux reports it doubled);
    it and TCP_NODELAY are inherited from EdgeServer's listening socket."""
    user = await api.register()
    await api.ws(user["access_token"])
    (client,) = api.ctx.hub.clients.values()
    sock = client.conn.ws_connection.stream.socket
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) in (65536, 2 * 65536)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
