"""Requests and their failures: coded errors, typing between two clients, unsubscribe,
and what connect() raises for an unreachable server or a refused token."""

from __future__ import annotations

import pytest
from liveserver import admin_tokens, free_port
from support import FAST, Collector, call, new_room, new_user

import events_client

pytestmark = pytest.mark.anyio


async def test_refused_requests_raise_request_error_with_the_code(server):
    """A subscribe to a missing room and a publish to someone else's private room raise
    RequestError with the server's code; the client stays usable."""
    owner, stranger = await new_user(server.url), await new_user(server.url)
    private = await new_room(server.url, owner.access_token, private=True)
    async with events_client.connect(server.url, token=stranger.access_token) as client:
        with pytest.raises(events_client.RequestError) as missing:
            await client.subscribe("room:does-not-exist")
        assert missing.value.code == "unknown_channel"
        with pytest.raises(events_client.RequestError) as forbidden:
            await client.publish(private, {"text": "let me in"})
        assert forbidden.value.code == "forbidden"
        assert "room:does-not-exist" not in client.subscriptions
        lobby = await client.subscribe("room:lobby")
        assert lobby.active and lobby.reply is not None and lobby.reply["subscribed"] is True


async def test_typing_reaches_the_other_subscriber_and_unsubscribe_stops_events(server):
    """typing(True) from one client arrives at the other as a typing event of the room;
    after unsubscribe the room's messages no longer arrive."""
    first, second = await new_user(server.url), await new_user(server.url)
    channel = await new_room(server.url, first.access_token)
    async with events_client.connect(server.url, token=first.access_token) as typist, \
            events_client.connect(server.url, token=second.access_token) as reader:
        watch = Collector(reader)
        room = await reader.subscribe(channel)
        await (await typist.subscribe(channel)).typing(True)
        await watch.until(lambda: bool(watch.of_type("typing")))
        typing = watch.of_type("typing")[0]
        assert typing.channel == channel
        assert typing.data == {"user_id": first.user["id"], "name": first.user["name"],
                               "active": True}
        await typist.publish(channel, {"n": 1})
        await watch.until(lambda: watch.messages(channel) == [1])
        await room.unsubscribe()
        assert not room.active and channel not in reader.subscriptions
        await typist.publish(channel, {"n": 2})
        await reader.presence(channel)  # a round trip: anything sent before it has arrived
        assert watch.messages(channel) == [1]


async def test_connect_raises_connect_error_when_nothing_listens():
    """The first connection is tried once: a closed port raises ConnectError."""
    with pytest.raises(events_client.ConnectError):
        await events_client.connect(f"http://127.0.0.1:{free_port()}", token="x.y.z",
                                    backoff=FAST)


async def test_connect_raises_auth_error_for_a_refused_token(server):
    """A token the server refuses (here not even a JWT) raises AuthError 401 at connect."""
    with pytest.raises(events_client.AuthError) as refused:
        await events_client.connect(server.url, token="not-a-token")
    assert refused.value.status == 401


async def clean_closes(url: str, admin: str) -> int:
    """How many sockets the server has seen closed with 1000 so far (GET /ws/stats)."""
    status, stats = await call(url, "GET", "/ws/stats", admin)
    assert status == 200, stats
    return int(stats["delivery"]["closes"].get("1000", 0))


async def test_awaited_connect_returns_a_client_to_close(server):
    """`client = await connect(...)` works as well as `async with`; close() closes the
    socket cleanly (1000, as the server counts it) and ends events()."""
    admin, user = (await admin_tokens(server.url)).access_token, await new_user(server.url)
    client = await events_client.connect(server.url, token=user.access_token)
    assert client.connected and client.welcome is not None
    assert client.welcome["user_id"] == user.user["id"]
    before = await clean_closes(server.url, admin)
    await client.close()
    assert not client.connected
    assert await clean_closes(server.url, admin) == before + 1
    kinds = [event.type async for event in client.events()]
    assert kinds[0] == "recovery"
    with pytest.raises(events_client.ConnectionLost):
        await client.presence("room:lobby")
