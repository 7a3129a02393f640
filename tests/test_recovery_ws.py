"""Resume over real sockets: a dropped connection recovers every missed feed and room event
exactly once and in order; stale epochs and trimmed positions answer recovered false."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import Api, next_event
from seqcheck import Sequence
from tornado.websocket import WebSocketClientConnection, websocket_connect

from hub.disconnect import SHUTTING_DOWN

LOBBY = "room:lobby"
NOISE = ("user.online", "user.offline", "presence.joined", "presence.left")


class Resumer:
    """A client that remembers its feed and room positions and resumes with them."""

    def __init__(self, api: Api, token: str) -> None:
        self.api, self.token = api, token
        self.feed: dict[str, str] = {}
        self.rooms: dict[str, dict[str, str]] = {}
        self.conn: WebSocketClientConnection | None = None
        self.welcome: dict[str, Any] = {}
        self._id = 0

    async def connect(self) -> dict[str, Any]:
        """Opens /ws with the remembered feed position; returns the welcome's data."""
        query = f"token={self.token}"
        if self.feed:
            query += f"&since={self.feed['offset']}&epoch={self.feed['epoch']}"
        self.conn = await websocket_connect(f"{self.api.ws_url}/ws?{query}")
        welcome = await next_event(self.conn, skip=NOISE)
        assert welcome["type"] == "connection.established", welcome
        data = welcome["data"]
        self.feed = {"epoch": data["epoch"], "offset": data["offset"]}
        self.welcome = data
        return data

    async def request(self, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        """Sends a request and returns its reply (nothing but noise may come first)."""
        self._id += 1
        await self.conn.write_message(json.dumps({"id": self._id, "type": type_, "data": data}))
        event = await next_event(self.conn, skip=NOISE)
        assert event.get("id") == self._id and event["type"] == "reply", event
        return event["data"]

    async def subscribe(self, channel: str) -> dict[str, Any]:
        """Subscribes with the remembered room position; returns the reply's data."""
        data: dict[str, Any] = {"channel": channel}
        if channel in self.rooms:
            data.update(since=self.rooms[channel]["offset"], epoch=self.rooms[channel]["epoch"])
        reply = await self.request("subscribe", data)
        self.rooms[channel] = {"epoch": reply["epoch"], "offset": reply["offset"]}
        return reply

    async def next(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """Returns the next event and moves the position of its stream; None once closed."""
        try:
            event = await next_event(self.conn, timeout, skip=NOISE)
        except AssertionError:  # the server closed the socket
            return None
        if "offset" in event:
            if event.get("channel"):
                self.rooms[event["channel"]]["offset"] = event["offset"]
            else:
                self.feed["offset"] = event["offset"]
        return event

    def drop_server_side(self) -> None:
        """Closes this client's socket from the server (as a deploy or a blip would)."""
        hub = self.api.ctx.hub
        client = next(c for c in hub.clients.values() if c.id == self.welcome["client_id"])
        hub.drop(client, SHUTTING_DOWN)


async def until(condition, timeout: float = 20.0) -> None:
    """Waits for condition() to hold, checking every few milliseconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def broadcast_numbers(api: Api, token: str, count: int, sent: list[int]) -> None:
    """Broadcasts system alerts numbered 0..count-1, one after another."""
    for n in range(count):
        status, body, _ = await api.call("POST", "/ws/broadcast", {"message": str(n)}, token)
        assert status == 200, body
        sent.append(n)


@pytest.mark.gen_test(timeout=60)
async def test_dropped_feed_connection_recovers_every_missed_event_once(api):
    """Events broadcast while a socket is down arrive after the resume: no gap, no duplicate."""
    admin = await api.admin()
    user = await api.register()
    reader = Resumer(api, user["access_token"])
    await reader.connect()
    seq, sent, total = Sequence(), [], 40
    producer = asyncio.ensure_future(broadcast_numbers(api, admin["access_token"], total, sent))
    while len(seq.seen) < 10:
        event = await reader.next()
        seq.add(int(event["data"]["message"]), event["offset"])
    reader.drop_server_side()
    while await reader.next() is not None:  # whatever was already on the wire
        pass
    await until(lambda: len(sent) >= 20)  # events are published while it is away
    seq.resumed(await reader.connect())
    while len(seq.seen) < total:
        event = await reader.next()
        assert event is not None and event["type"] == "system.alert", event
        seq.add(int(event["data"]["message"]), event["offset"])
    await producer
    seq.assert_complete(total)
    assert seq.recovered == 1 and seq.not_recovered == 0 and seq.missed >= 1


@pytest.mark.gen_test(timeout=60)
async def test_dropped_room_subscription_recovers_every_missed_message_once(api):
    """Room messages published while a subscriber is away are replayed after the subscribe
    reply, then live ones follow: no gap, no duplicate, in order."""
    writer_user, reader_user = await api.register(), await api.register()
    writer = Resumer(api, writer_user["access_token"])
    await writer.connect()
    reader = Resumer(api, reader_user["access_token"])
    await reader.connect()
    await reader.subscribe(LOBBY)
    seq, total = Sequence(), 40

    async def publish_all() -> None:
        for n in range(total):
            await writer.request("publish", {"channel": LOBBY, "data": {"n": n}})

    producer = asyncio.ensure_future(publish_all())
    while len(seq.seen) < 10:
        event = await reader.next()
        seq.add(event["data"]["body"]["n"], event["offset"])
    reader.drop_server_side()
    while await reader.next() is not None:
        pass
    await until(lambda: int(api.ctx.broker.log.position(LOBBY)[1]) >= 20)
    await reader.connect()
    reply = await reader.subscribe(LOBBY)
    seq.resumed(reply)
    while len(seq.seen) < total:
        event = await reader.next()
        assert event is not None and event["type"] == "channel.message", event
        seq.add(event["data"]["body"]["n"], event["offset"])
    await producer
    seq.assert_complete(total)
    assert seq.recovered == 1 and seq.missed >= 1
    assert seq.offsets == list(range(seq.offsets[0], seq.offsets[0] + total))


@pytest.mark.gen_test(timeout=60)
async def test_stale_epoch_answers_recovered_false_and_replays_nothing(api):
    """A position from another epoch is refused plainly: recovered false, missed 0."""
    admin = await api.admin()
    user = await api.register()
    reader = Resumer(api, user["access_token"])
    await reader.connect()
    await broadcast_numbers(api, admin["access_token"], 3, [])
    reader.conn.close()
    reader.feed = {"epoch": "not-this-epoch", "offset": "0"}
    welcome = await reader.connect()
    assert welcome["recovered"] is False and welcome["missed"] == 0
    assert (welcome["epoch"], welcome["offset"]) == api.ctx.broker.log.position("feed")
    reader.rooms[LOBBY] = {"epoch": "not-this-epoch", "offset": "0"}
    reply = await reader.subscribe(LOBBY)
    assert reply["recovered"] is False and reply["missed"] == 0
    await broadcast_numbers(api, admin["access_token"], 1, [])  # live events still flow
    event = await reader.next()
    assert event["type"] == "system.alert" and event["data"]["message"] == "0"


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(history_size=5)
async def test_position_older_than_the_window_is_not_recovered(api):
    """After more events than --history-size, an old position answers recovered false."""
    admin = await api.admin()
    user = await api.register()
    reader = Resumer(api, user["access_token"])
    await reader.connect()
    reader.conn.close()
    await broadcast_numbers(api, admin["access_token"], 8, [])
    welcome = await reader.connect()
    assert welcome["recovered"] is False and welcome["missed"] == 0
    reader.conn.close()
    await broadcast_numbers(api, admin["access_token"], 3, [])  # within the window now
    welcome = await reader.connect()
    assert welcome["recovered"] is True and welcome["missed"] == 3
    got = [(await reader.next())["data"]["message"] for _ in range(3)]
    assert got == ["0", "1", "2"]


@pytest.mark.gen_test(timeout=60)
async def test_malformed_position_is_not_an_error(api):
    """A malformed since on /ws and on subscribe answers recovered false, never a close."""
    user = await api.register()
    conn = await websocket_connect(
        f"{api.ws_url}/ws?token={user['access_token']}&since=abc&epoch=x")
    welcome = await next_event(conn, skip=NOISE)
    assert welcome["data"]["recovered"] is False and welcome["data"]["missed"] == 0
    await conn.write_message(json.dumps({"id": 1, "type": "subscribe", "data": {
        "channel": LOBBY, "since": {"no": 1}, "epoch": 7}}))
    reply = await next_event(conn, skip=NOISE)
    assert reply["type"] == "reply" and reply["data"]["recovered"] is False


@pytest.mark.gen_test(timeout=90)
async def test_concurrent_publishers_give_every_subscriber_the_same_order(api):
    """Three users publishing at once to one room: both subscribers see one order, offsets
    increase by one, and each publisher's own messages keep their order."""
    users = [await api.register() for _ in range(5)]
    clients = [Resumer(api, u["access_token"]) for u in users]
    for client in clients:
        await client.connect()
    subscribers, publishers, per = clients[3:], clients[:3], 25
    for client in subscribers:
        await client.subscribe(LOBBY)

    async def publish(index: int, client: Resumer) -> None:
        for n in range(per):
            await client.request("publish", {"channel": LOBBY, "data": {"p": index, "n": n}})

    await asyncio.gather(*(publish(i, c) for i, c in enumerate(publishers)))
    orders = []
    for client in subscribers:
        got = [await client.next() for _ in range(3 * per)]
        orders.append([(e["data"]["body"]["p"], e["data"]["body"]["n"], e["offset"])
                       for e in got])
    assert orders[0] == orders[1]
    offsets = [int(o) for _, _, o in orders[0]]
    assert offsets == list(range(offsets[0], offsets[0] + 3 * per))
    for index in range(3):
        assert [n for p, n, _ in orders[0] if p == index] == list(range(per))


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(history_size=3)
async def test_history_answers_from_the_log_then_the_database_with_offsets(api):
    """history pages newest first across the recovery log and the stored messages, and every
    message carries the offset it was delivered with."""
    user = await api.register()
    chat = Resumer(api, user["access_token"])
    await chat.connect()
    sent = [await chat.request("publish", {"channel": LOBBY, "data": {"n": n}})
            for n in range(6)]
    await api.ctx.messages.flush()
    page = await chat.request("history", {"channel": LOBBY, "limit": 4})
    assert [m["body"]["n"] for m in page["messages"]] == [5, 4, 3, 2]
    assert [m["offset"] for m in page["messages"]] == [s["offset"] for s in sent[5:1:-1]]
    older = await chat.request("history", {"channel": LOBBY, "limit": 10,
                                           "before": page["messages"][-1]["id"]})
    assert [m["body"]["n"] for m in older["messages"]] == [1, 0]
    assert [m["offset"] for m in older["messages"]] == [sent[1]["offset"], sent[0]["offset"]]


@pytest.mark.gen_test(timeout=60)
async def test_resumes_are_counted_by_outcome_with_the_events_they_replayed(api):
    """events_recovery_total counts resumes that named a position, by outcome, and
    events_replayed_total the missed events they sent; first connections count in neither."""
    def sample(name: str, **labels: str) -> float:
        return api.ctx.metrics.registry.get_sample_value(name, labels) or 0.0

    admin = await api.admin()
    user = await api.register()
    reader = Resumer(api, user["access_token"])
    await reader.connect()
    reader.conn.close()
    await broadcast_numbers(api, admin["access_token"], 2, [])
    await reader.connect()
    reader.conn.close()
    reader.feed["epoch"] = "stale"
    await reader.connect()
    assert sample("events_recovery_total", outcome="recovered") == 1
    assert sample("events_recovery_total", outcome="not_recovered") == 1
    assert sample("events_replayed_total") == 2
