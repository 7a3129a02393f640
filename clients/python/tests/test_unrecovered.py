"""`recovered: false` reaches the application: when a resume cannot be proven complete (the
position was trimmed from history, or the stream's epoch was lost in a crash), the recovery
event says so for that stream, nothing from the gap is yielded, and live events go on."""

from __future__ import annotations

import asyncio
import signal

import pytest
from liveserver import Gate, admin_tokens, unique
from support import FAST, Collector, broadcast, call, entry, new_room, new_user

import events_client

pytestmark = pytest.mark.anyio


async def test_trimmed_position_is_reported_not_recovered(make_server):
    """With --history-size=5, a client that misses 10 events of each stream is told
    recovered false with missed 0 for both, gets none of the 10, and then the live ones."""
    live = make_server("--history-size=5")
    admin, user = await admin_tokens(live.url), await new_user(live.url)
    channel, tag = await new_room(live.url, user.access_token), unique()
    async with Gate(live.port) as gate, \
            events_client.connect(gate.url, token=user.access_token, backoff=FAST) as client, \
            events_client.connect(live.url, token=admin.access_token) as publisher:
        watch, witness = Collector(client), Collector(publisher)
        room = await client.subscribe(channel)
        await publisher.subscribe(channel)
        for n in (1, 2):
            await broadcast(live.url, admin.access_token, f"{tag}:{n}")
            await publisher.publish(channel, {"n": n})
        await watch.until(lambda: watch.counts(tag, channel) == (2, 2))
        gate.cut()
        for n in range(3, 13):
            await broadcast(live.url, admin.access_token, f"{tag}:{n}")
            await publisher.publish(channel, {"n": n})
        await witness.until(lambda: witness.counts(tag, channel) == (12, 12))  # all published
        gate.open()
        await watch.until(lambda: len(watch.recoveries()) == 2)
        resumed = watch.recoveries()[1]
        assert entry(resumed, None) == {"channel": None, "recovered": False, "missed": 0}
        assert entry(resumed, channel) == {"channel": channel, "recovered": False, "missed": 0}
        assert room.recovered is False and room.missed == 0
        await broadcast(live.url, admin.access_token, f"{tag}:13")
        await publisher.publish(channel, {"n": 13})
        await watch.until(lambda: watch.counts(tag, channel) == (3, 3))
        assert watch.alerts(tag) == [1, 2, 13]
        assert watch.messages(channel) == [1, 2, 13]


async def test_room_epoch_lost_in_a_crash_is_reported_not_recovered(make_server):
    """After a SIGKILL the room starts a new epoch: the resumed subscription says recovered
    false, and the room's next message is yielded once."""
    live = make_server()
    user = await new_user(live.url)
    channel = await new_room(live.url, user.access_token)
    async with Gate(live.port) as gate, \
            events_client.connect(gate.url, token=user.access_token, backoff=FAST) as client:
        watch = Collector(client)
        room = await client.subscribe(channel)
        for n in (1, 2, 3):
            await room.publish({"n": n})
        await watch.until(lambda: watch.messages(channel) == [1, 2, 3])
        epoch = room.epoch
        gate.cut()
        await asyncio.to_thread(live.stop, signal.SIGKILL)
        await asyncio.to_thread(live.start)
        gate.open()
        await watch.until(lambda: len(watch.recoveries()) == 2)
        resumed = watch.recoveries()[1]
        assert entry(resumed, channel) == {"channel": channel, "recovered": False, "missed": 0}
        assert room.epoch != epoch
        await room.publish({"n": 4})
        await watch.until(lambda: 4 in watch.messages(channel))
        assert watch.messages(channel) == [1, 2, 3, 4]


async def test_room_refused_on_resubscribe_is_reported_and_left(server):
    """Removed from a private room while disconnected, the client's re-subscription is
    refused: the recovery entry says recovered false with the error code, the Subscription
    is left with RequestError, and later reconnects no longer ask for the room."""
    owner, member = await new_user(server.url), await new_user(server.url)
    channel = await new_room(server.url, owner.access_token, private=True)
    name = channel.split(":", 1)[1]
    status, body = await call(server.url, "POST", f"/api/v1/rooms/{name}/members",
                              owner.access_token, {"user_id": member.user["id"]})
    assert status == 201, body
    async with Gate(server.port) as gate, \
            events_client.connect(gate.url, token=member.access_token, backoff=FAST) as client:
        watch = Collector(client)
        room = await client.subscribe(channel)
        gate.cut()
        status, body = await call(server.url, "DELETE",
                                  f"/api/v1/rooms/{name}/members/{member.user['id']}",
                                  owner.access_token)
        assert status == 200, body
        gate.open()
        await watch.until(lambda: len(watch.recoveries()) == 2)
        assert entry(watch.recoveries()[1], channel) == {
            "channel": channel, "recovered": False, "missed": 0, "error": "forbidden"}
        assert not room.active and isinstance(room.error, events_client.RequestError)
        assert room.error.code == "forbidden" and channel not in client.subscriptions
        gate.cut()
        gate.open()
        await watch.until(lambda: len(watch.recoveries()) == 3)
        assert watch.recoveries()[2] == [{"channel": None, "recovered": True, "missed": 0}]
