"""Revocation: a 1008 close for a revoked session or a deleted account ends the client with
Revoked (after the events that came before it), and nothing reconnects."""

from __future__ import annotations

import asyncio

import pytest
from liveserver import Gate, admin_tokens
from support import FAST, Collector, call, new_user

import events_client

pytestmark = pytest.mark.anyio


async def test_password_change_raises_revoked_after_the_event(server):
    """The user changes the password elsewhere: events() yields password.changed, then
    raises Revoked("session revoked"); later calls raise it too; no reconnect is tried."""
    user = await new_user(server.url)
    async with Gate(server.port) as gate, \
            events_client.connect(gate.url, token=user.access_token,
                                  refresh_token=user.refresh_token, backoff=FAST) as client:
        watch = Collector(client)
        await client.subscribe("room:lobby")
        status, body = await call(server.url, "POST", "/api/v1/users/me/password",
                                  user.access_token, {"current_password": "password123",
                                                      "new_password": "another-pass-456"})
        assert status == 200, body
        error = await watch.finished()
        assert isinstance(error, events_client.Revoked)
        assert error.reason == "session revoked" and error.code == 1008
        assert watch.events[-1].type == "password.changed"
        with pytest.raises(events_client.Revoked):
            await client.publish("room:lobby", {"text": "still there?"})
        with pytest.raises(events_client.Revoked):
            async for _ in client.events():
                pass
        assert gate.accepted == 1 and client.connections == 1


async def test_account_deletion_raises_revoked(server):
    """An admin deletes the account: events() raises Revoked("account deleted")."""
    admin, user = await admin_tokens(server.url), await new_user(server.url)
    async with events_client.connect(server.url, token=user.access_token,
                                     backoff=FAST) as client:
        watch = Collector(client)
        status, body = await call(server.url, "DELETE", f"/api/v1/users/{user.user['id']}",
                                  admin.access_token)
        assert status == 200, body
        error = await watch.finished()
        assert isinstance(error, events_client.Revoked) and error.reason == "account deleted"
        with pytest.raises(events_client.Revoked):
            await client.subscribe("room:lobby")


async def test_a_request_in_flight_raises_revoked(server):
    """A presence request the server has not answered when it closes the socket with 1008
    fails with Revoked, not with a plain connection error."""
    user = await new_user(server.url)
    async with Gate(server.port) as gate, \
            events_client.connect(gate.url, token=user.access_token, backoff=FAST) as client:
        ws = client.link.live
        assert ws is not None
        gate.hold()  # the request waits in the relay: the server cannot answer it
        pending = asyncio.create_task(client.presence("room:lobby"))
        status, body = await call(server.url, "POST", "/api/v1/auth/logout", user.access_token)
        assert status == 200, body
        for _ in range(500):  # until the server's close frame has reached the client
            if ws.protocol.close_rcvd is not None:
                break
            await asyncio.sleep(0.01)
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1008
        gate.release()
        with pytest.raises(events_client.Revoked) as caught:
            await asyncio.wait_for(pending, 10)
        assert caught.value.reason == "session revoked"
