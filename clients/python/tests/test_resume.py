"""Resume: after a cut connection or a server restart, every event of the feed and of a room
comes out of events() exactly once and in order (1..N counted per stream)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from liveserver import Gate, admin_tokens, unique
from support import FAST, Collector, broadcast, entry, new_room, new_user

import events_client

pytestmark = pytest.mark.anyio


async def publish_both(url: str, admin: str, publisher: events_client.Client, channel: str,
                       tag: str, numbers: range) -> None:
    """Publishes alert `tag:n` to everyone and message {n} to the room, for each n."""
    for n in numbers:
        await broadcast(url, admin, f"{tag}:{n}")
        await publisher.publish(channel, {"n": n})


async def test_resumes_feed_and_room_after_a_cut_with_every_missed_event(server):
    """Cut off while 10 alerts and 10 room messages are published, the client resumes both
    streams: it yields 1..20 of each once, and its recovery event counts 10 missed each."""
    admin, user, other = (await admin_tokens(server.url), await new_user(server.url),
                          await new_user(server.url))
    channel, tag = await new_room(server.url, other.access_token), unique()
    async with Gate(server.port) as gate, \
            events_client.connect(gate.url, token=user.access_token, backoff=FAST) as client, \
            events_client.connect(server.url, token=other.access_token) as publisher:
        watch, witness = Collector(client), Collector(publisher)
        await client.subscribe(channel)
        await publisher.subscribe(channel)
        await publish_both(server.url, admin.access_token, publisher, channel, tag, range(1, 11))
        await watch.until(lambda: watch.counts(tag, channel) == (10, 10))
        gate.cut()
        await publish_both(server.url, admin.access_token, publisher, channel, tag, range(11, 21))
        # An alert may reach the feed a moment after its POST answered: open the gate once a
        # connected client has all 20 of each, so that the 10 are missed, not live.
        await witness.until(lambda: witness.counts(tag, channel) == (20, 20))
        gate.open()
        await watch.until(lambda: len(watch.recoveries()) == 2)
        await publish_both(server.url, admin.access_token, publisher, channel, tag, range(21, 23))
        await watch.until(lambda: watch.counts(tag, channel) == (22, 22))
        assert watch.alerts(tag) == list(range(1, 23))
        assert watch.messages(channel) == list(range(1, 23))
        first, resumed = watch.recoveries()
        assert first == [{"channel": None, "recovered": False, "missed": 0}]
        assert entry(resumed, None) == {"channel": None, "recovered": True, "missed": 10}
        assert entry(resumed, channel) == {"channel": channel, "recovered": True, "missed": 10}
        assert client.connections == 2
        # The recovery event follows the replayed events of both streams.
        kinds = [e.type for e in watch.events]
        assert kinds.index("recovery", 1) > max(
            i for i, e in enumerate(watch.events) if e.type == "system.alert"
            and e.data["message"] == f"{tag}:20")


async def test_resumes_when_cut_while_events_are_in_flight(server):
    """Cut while alerts and messages stream in and published on through the reconnect, the
    client still yields 1..N of each stream, no gap, no duplicate."""
    admin, user, other = (await admin_tokens(server.url), await new_user(server.url),
                          await new_user(server.url))
    channel, tag = await new_room(server.url, other.access_token), unique()
    total = 40
    async with Gate(server.port) as gate, \
            events_client.connect(gate.url, token=user.access_token, backoff=FAST) as client, \
            events_client.connect(server.url, token=other.access_token) as publisher:
        watch = Collector(client)
        await client.subscribe(channel)
        producing = asyncio.create_task(publish_both(
            server.url, admin.access_token, publisher, channel, tag, range(1, total + 1)))
        await watch.until(lambda: len(watch.messages(channel)) >= 5)
        gate.cut()
        await asyncio.sleep(0)  # let the cut land before the gate opens again
        gate.open()
        await producing
        await watch.until(lambda: len(watch.alerts(tag)) >= total
                          and len(watch.messages(channel)) >= total)
        await watch.until(lambda: len(watch.recoveries()) == 2)
        assert watch.alerts(tag) == list(range(1, total + 1))
        assert watch.messages(channel) == list(range(1, total + 1))
        resumed = watch.recoveries()[1]
        assert entry(resumed, None)["recovered"] and entry(resumed, channel)["recovered"]


async def test_resumes_after_a_sigterm_restart(make_server, caplog):
    """The server drains (1001) and a new process takes over its data and port: the client
    reconnects, recovers what was published while it was away, and counts 1..N per stream."""
    caplog.set_level(logging.INFO, logger="events_client")
    live = make_server()
    admin, user, other = (await admin_tokens(live.url), await new_user(live.url),
                          await new_user(live.url))
    channel, tag = await new_room(live.url, other.access_token), unique()
    async with Gate(live.port) as gate, \
            events_client.connect(gate.url, token=user.access_token, backoff=FAST) as client, \
            events_client.connect(live.url, token=other.access_token, backoff=FAST) as publisher:
        watch, witness = Collector(client), Collector(publisher)
        await client.subscribe(channel)
        await publisher.subscribe(channel)
        await publish_both(live.url, admin.access_token, publisher, channel, tag, range(1, 6))
        await watch.until(lambda: watch.counts(tag, channel) == (5, 5))
        await asyncio.to_thread(live.stop)  # SIGTERM: every socket is closed with 1001
        gate.cut()  # keeps the client away until what it misses has been published
        await asyncio.to_thread(live.start)
        # The publisher reconnects by itself; its publish waits for that.
        await publish_both(live.url, admin.access_token, publisher, channel, tag, range(6, 11))
        await witness.until(lambda: witness.counts(tag, channel) == (10, 10))
        gate.open()
        await watch.until(lambda: len(watch.recoveries()) == 2)
        await publish_both(live.url, admin.access_token, publisher, channel, tag, range(11, 13))
        await watch.until(lambda: watch.counts(tag, channel) == (12, 12))
        assert watch.alerts(tag) == list(range(1, 13))
        assert watch.messages(channel) == list(range(1, 13))
        resumed = watch.recoveries()[1]
        assert entry(resumed, None) == {"channel": None, "recovered": True, "missed": 5}
        assert entry(resumed, channel) == {"channel": channel, "recovered": True, "missed": 5}
    assert "connection closed: 1001 server shutting down" in caplog.text


async def test_gives_up_after_max_attempts_failed_reconnects(server):
    """With Backoff(max_attempts=3) and the server out of reach, events() raises
    ConnectError after three failed attempts in a row (the drop itself is not one)."""
    user = await new_user(server.url)
    backoff = events_client.Backoff(initial=0.01, maximum=0.05, max_attempts=3)
    async with Gate(server.port) as gate, \
            events_client.connect(gate.url, token=user.access_token, backoff=backoff) as client:
        watch = Collector(client)
        await watch.until(lambda: len(watch.recoveries()) == 1)
        gate.cut()
        error = await watch.finished()
        assert isinstance(error, events_client.ConnectError)
        assert "3 failed attempts" in str(error)
        assert gate.refused == 3
