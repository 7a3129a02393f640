"""Rooms over real sockets: chatting, private rooms, live removal, presence, typing, errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import Api, next_event, wait_closed
from tornado.websocket import WebSocketClientConnection

LOBBY = "room:lobby"


class Chat:
    """A connected user who sends requests with ids and reads replies and events in order."""

    def __init__(self, api: Api, user: dict[str, Any], conn: WebSocketClientConnection) -> None:
        self.api, self.user, self.conn = api, user, conn
        self.token = user["access_token"]
        self.id = user["user"]["id"]
        self._next_id = 0

    @classmethod
    async def open(cls, api: Api, user: dict[str, Any] | None = None) -> Chat:
        user = user or await api.register()
        return cls(api, user, await api.ws(user["access_token"]))

    async def send(self, type_: str, data: Any = None, **extra: Any) -> int:
        """Sends one request with a fresh id (unless extra sets one); returns that id."""
        self._next_id += 1
        frame = {"id": self._next_id, "type": type_, **extra}
        if data is not None:
            frame["data"] = data
        await self.conn.write_message(json.dumps(frame))
        return frame["id"]

    async def event(self, *skip: str) -> dict[str, Any]:
        """Returns the next event, skipping presence noise and the given types."""
        return await next_event(self.conn, skip=("user.online", "user.offline", *skip))

    async def request(self, type_: str, data: Any = None, *skip: str) -> dict[str, Any]:
        """Sends a request and returns its reply or error (events before it must be skipped)."""
        request_id = await self.send(type_, data)
        while True:
            event = await self.event(*skip)
            if event["type"] in ("reply", "error") and event.get("id") == request_id:
                return event
            raise AssertionError(f"unexpected event before the reply: {event}")

    async def subscribe(self, channel: str = LOBBY, joins: bool = True) -> dict[str, Any]:
        """Subscribes; the user's own presence.joined follows the reply on a first tab."""
        reply = await self.request("subscribe", {"channel": channel}, "presence.joined")
        assert reply["type"] == "reply", reply
        if joins:
            event = await self.event()
            assert event["type"] == "presence.joined" and event["data"]["user_id"] == self.id
        return reply

    async def quiet(self, other: Chat | None = None) -> None:
        """Proves nothing else arrived: a broadcast sentinel must be the very next event."""
        admin = await self.api.admin()
        text = f"sentinel-{id(self)}"
        status, _, _ = await self.api.call("POST", "/ws/broadcast", {"message": text},
                                           admin["access_token"])
        assert status == 200
        for chat in (self, other) if other else (self,):
            event = await chat.event("presence.joined", "presence.left")
            assert event["type"] == "system.alert" and event["data"]["message"] == text, event


async def create_room(api: Api, owner: Chat, name: str, private: bool = False) -> str:
    status, body, _ = await api.call("POST", "/api/v1/rooms", {"name": name, "private": private},
                                     owner.token)
    assert status == 201, body
    return f"room:{name}"


@pytest.mark.gen_test(timeout=30)
async def test_two_users_chat_and_every_message_arrives_once_in_order(api):
    """Messages published by two users reach both, sender included, in publish order, once."""
    ann, bob = await Chat.open(api), await Chat.open(api)
    await ann.subscribe()
    await bob.subscribe()
    for n in range(20):
        sender = ann if n % 2 == 0 else bob
        await sender.send("publish", {"channel": LOBBY, "data": {"seq": n}})
    for chat in (ann, bob):
        seqs, replies = [], 0
        while len(seqs) < 20 or replies < 10:
            event = await chat.event("presence.joined")
            if event["type"] == "reply":
                replies += 1
                assert event["data"]["channel"] == LOBBY and event["data"]["id"]
                continue
            assert event["type"] == "channel.message" and event["channel"] == LOBBY, event
            seqs.append(event["data"]["body"]["seq"])
            author = ann if event["data"]["body"]["seq"] % 2 == 0 else bob
            assert event["data"]["from"] == {"user_id": author.id,
                                             "name": author.user["user"]["name"]}
        assert sorted(seqs) == list(range(20)) and len(set(seqs)) == 20
        # each sender's own messages keep their order; the two senders interleave as sent
        assert [s for s in seqs if s % 2 == 0] == list(range(0, 20, 2))
        assert [s for s in seqs if s % 2 == 1] == list(range(1, 20, 2))
    await ann.quiet(bob)


@pytest.mark.gen_test(timeout=30)
async def test_published_messages_are_stored_and_paged_newest_first(api):
    """After the write-behind flush, REST and the history verb return the messages newest first."""
    ann = await Chat.open(api)
    await ann.subscribe()
    ids = []
    for n in range(5):
        reply = await ann.request("publish", {"channel": LOBBY, "data": {"n": n}},
                                  "channel.message")
        ids.append(reply["data"]["id"])
    assert ids == sorted(ids)
    await api.ctx.messages.flush()
    status, body, _ = await api.call("GET", "/api/v1/rooms/lobby/messages?limit=3", token=ann.token)
    assert status == 200
    page = body["data"]["messages"]
    assert [m["body"]["n"] for m in page] == [4, 3, 2]
    assert body["data"]["next_before"] == page[-1]["id"]
    status, body, _ = await api.call(
        "GET", f"/api/v1/rooms/lobby/messages?limit=3&before={page[-1]['id']}", token=ann.token)
    assert [m["body"]["n"] for m in body["data"]["messages"]] == [1, 0]
    assert body["data"]["next_before"] is None
    reply = await ann.request("history", {"channel": LOBBY, "limit": 2})
    assert [m["body"]["n"] for m in reply["data"]["messages"]] == [4, 3]


@pytest.mark.gen_test(timeout=30)
async def test_private_room_refused_then_allowed_after_being_added(api):
    """A non-member cannot subscribe to or publish in a private room until the owner adds them."""
    owner, guest = await Chat.open(api), await Chat.open(api)
    channel = await create_room(api, owner, "secret", private=True)
    refused = await guest.request("subscribe", {"channel": channel})
    assert refused["type"] == "error" and refused["data"]["code"] == "forbidden"
    refused = await guest.request("publish", {"channel": channel, "data": {"x": 1}})
    assert refused["data"]["code"] == "forbidden"
    status, _, _ = await api.call("POST", "/api/v1/rooms/secret/members",
                                  {"user_id": guest.id}, owner.token)
    assert status == 201
    await guest.subscribe(channel)
    await owner.subscribe(channel)
    await owner.send("publish", {"channel": channel, "data": {"text": "welcome"}})
    event = await guest.event("presence.joined")
    assert event["type"] == "channel.message" and event["data"]["body"] == {"text": "welcome"}


@pytest.mark.gen_test(timeout=30)
async def test_removed_member_is_unsubscribed_live_and_hears_nothing_more(api):
    """Removing a member sends channel.unsubscribed at once; later messages do not reach them."""
    owner, guest = await Chat.open(api), await Chat.open(api)
    channel = await create_room(api, owner, "team", private=True)
    await api.call("POST", "/api/v1/rooms/team/members", {"user_id": guest.id}, owner.token)
    await owner.subscribe(channel)
    await guest.subscribe(channel)
    status, _, _ = await api.call("DELETE", f"/api/v1/rooms/team/members/{guest.id}",
                                  token=owner.token)
    assert status == 200
    event = await guest.event("presence.joined")
    assert event["type"] == "channel.unsubscribed" and event["channel"] == channel
    assert event["data"] == {"channel": channel, "reason": "removed from room"}
    assert channel not in api.ctx.hub.by_user[guest.id][next(iter(
        api.ctx.hub.by_user[guest.id]))].channels
    await owner.send("publish", {"channel": channel, "data": {"text": "after"}})
    assert (await owner.event("presence.joined", "presence.left"))["type"] == "channel.message"
    refused = await guest.request("publish", {"channel": channel, "data": {"x": 1}})
    assert refused["data"]["code"] == "forbidden"
    await guest.quiet()


@pytest.mark.gen_test(timeout=30)
async def test_deleted_room_unsubscribes_every_subscriber(api):
    """Deleting a room tells each subscriber channel.unsubscribed with reason room deleted."""
    owner, guest = await Chat.open(api), await Chat.open(api)
    channel = await create_room(api, owner, "temp")
    await owner.subscribe(channel)
    await guest.subscribe(channel)
    status, _, _ = await api.call("DELETE", "/api/v1/rooms/temp", token=owner.token)
    assert status == 200
    for chat in (owner, guest):
        event = await chat.event("presence.joined")
        assert event["type"] == "channel.unsubscribed"
        assert event["data"]["reason"] == "room deleted"
    assert api.ctx.hub.subscriber_count(channel) == 0
    again = await guest.request("subscribe", {"channel": channel})
    assert again["data"]["code"] == "unknown_channel"


@pytest.mark.gen_test(timeout=30)
async def test_presence_joined_and_left_per_user_with_grace(api):
    """Presence is per user: a second tab or a quick reload is silent; leaving for good is not."""
    api.ctx.hub.presence.grace = 0.5
    ann, bob = await Chat.open(api), await Chat.open(api)
    await ann.subscribe()
    await bob.subscribe()
    joined = await ann.event()
    assert joined["type"] == "presence.joined" and joined["channel"] == LOBBY
    assert joined["data"] == {"user_id": bob.id, "name": bob.user["user"]["name"]}
    bob2 = Chat(api, bob.user, await api.ws(bob.token))
    await bob2.subscribe(joins=False)
    reply = await ann.request("presence", {"channel": LOBBY})
    members = {m["user_id"]: m for m in reply["data"]["members"]}
    assert members[bob.id]["connections"] == 2 and members[ann.id]["connections"] == 1
    bob2.conn.close()  # one tab of two: no leave
    bob.conn.close()  # then the last one, and a reload within the grace
    bob3 = Chat(api, bob.user, await api.ws(bob.token))
    await bob3.subscribe(joins=False)
    await ann.quiet()
    bob3.conn.close()
    left = await ann.event()
    assert left["type"] == "presence.left" and left["data"]["user_id"] == bob.id
    reply = await ann.request("presence", {"channel": LOBBY})
    assert [m["user_id"] for m in reply["data"]["members"]] == [ann.id]


@pytest.mark.gen_test(timeout=30)
async def test_admins_see_user_online_and_offline(api):
    """Admins get user.online when a user connects and user.offline after the grace."""
    api.ctx.hub.presence.grace = 0.3
    admin = await api.admin()
    watcher = await api.ws(admin["access_token"])
    assert (await next_event(watcher, skip=()))["type"] == "user.online"  # the admin itself
    user = await api.register()
    conn = await api.ws(user["access_token"])
    online = await next_event(watcher, skip=("user.created",))
    assert online["type"] == "user.online" and online["data"]["user_id"] == user["user"]["id"]
    status, body, _ = await api.call("GET", "/api/v1/presence", token=admin["access_token"])
    assert status == 200
    assert {m["user_id"] for m in body["data"]["online"]} == {user["user"]["id"],
                                                              admin["user"]["id"]}
    conn.close()
    offline = await next_event(watcher, skip=())
    assert offline["type"] == "user.offline" and offline["data"]["user_id"] == user["user"]["id"]


@pytest.mark.gen_test(timeout=30)
async def test_typing_reaches_the_other_user_only(api):
    """A typing signal reaches the room's other users, never the typer's own connections."""
    ann, bob = await Chat.open(api), await Chat.open(api)
    await ann.subscribe()
    await bob.subscribe()
    await ann.send("typing", {"channel": LOBBY, "active": True})
    event = await bob.event("presence.joined")
    assert event["type"] == "typing" and event["channel"] == LOBBY
    assert event["data"] == {"user_id": ann.id, "name": ann.user["user"]["name"], "active": True}
    await ann.send("typing", {"channel": LOBBY, "active": False})
    assert (await bob.event())["data"]["active"] is False
    await ann.quiet()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("frame, code", [
    ({"type": "subscribe", "data": {"channel": "feed"}}, "invalid_message"),
    ({"type": "subscribe", "data": {"channel": "room:Upper"}}, "invalid_message"),
    ({"type": "subscribe", "data": {"channel": "room:" + "a" * 65}}, "invalid_message"),
    ({"type": "subscribe", "data": {"channel": 5}}, "invalid_message"),
    ({"type": "subscribe", "data": "room:lobby"}, "invalid_message"),
    ({"type": "subscribe", "data": {"channel": "room:nope"}}, "unknown_channel"),
    ({"type": "publish", "data": {"channel": LOBBY, "data": [1]}}, "invalid_message"),
    ({"type": "publish", "data": {"channel": LOBBY, "data": {"p": "x" * 17000}}}, "too_large"),
    ({"type": "unsubscribe", "data": {"channel": LOBBY}}, "not_subscribed"),
    ({"type": "typing", "data": {"channel": LOBBY, "active": True}}, "not_subscribed"),
    ({"type": "history", "data": {"channel": LOBBY, "limit": 0}}, "invalid_message"),
    ({"type": "history", "data": {"channel": LOBBY, "before": 5}}, "invalid_message"),
    ({"type": "presence", "data": {"channel": "room:nope"}}, "unknown_channel"),
])
async def test_bad_requests_get_an_error_with_their_id_and_change_nothing(api, frame, code):
    """Each bad request is answered with one error carrying its id; the socket stays open."""
    chat = await Chat.open(api)
    request_id = await chat.send(frame["type"], frame["data"])
    event = await chat.event()
    assert event["type"] == "error" and event["id"] == request_id, event
    assert event["data"]["code"] == code and event["data"]["message"]
    client = next(iter(api.ctx.hub.clients.values()))
    assert not client.channels and chat.conn.close_code is None
    await chat.quiet()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("bad_id", [0, -1, 2**31 + 1, "7", True, 1.5])
async def test_request_ids_out_of_range_are_refused(api, bad_id):
    """An id that is not a whole number from 1 to 2^31 gets invalid_message (no id echoed)."""
    chat = await Chat.open(api)
    await chat.conn.write_message(json.dumps(
        {"id": bad_id, "type": "subscribe", "data": {"channel": LOBBY}}))
    event = await chat.event()
    assert event["type"] == "error" and event["data"]["code"] == "invalid_message"
    assert "id" not in event
    assert not next(iter(api.ctx.hub.clients.values())).channels


@pytest.mark.gen_test(timeout=30)
async def test_subscribing_twice_is_idempotent_and_max_id_is_echoed(api):
    """A second subscribe is answered like the first; the largest id is echoed as sent."""
    chat = await Chat.open(api)
    for _ in range(2):
        await chat.conn.write_message(json.dumps(
            {"id": 2**31, "type": "subscribe", "data": {"channel": LOBBY}}))
        event = await chat.event("presence.joined")
        epoch, offset = api.ctx.broker.log.position(LOBBY)
        assert event == {**event, "type": "reply", "id": 2**31,
                         "data": {"channel": LOBBY, "subscribed": True, "epoch": epoch,
                                  "offset": offset, "recovered": False, "missed": 0}}
    assert api.ctx.hub.subscriber_count(LOBBY) == 1


@pytest.mark.gen_test(timeout=30)
@pytest.mark.settings(max_subscriptions=2)
async def test_subscriptions_per_connection_are_capped(api):
    """Past --max-subscriptions a subscribe is forbidden with a message naming the limit."""
    chat = await Chat.open(api)
    for name in ("a", "b", "c"):
        await create_room(api, chat, name)
    await chat.subscribe("room:a")
    await chat.subscribe("room:b")
    refused = await chat.request("subscribe", {"channel": "room:c"})
    assert refused["data"]["code"] == "forbidden"
    assert "2 subscriptions" in refused["data"]["message"]


@pytest.mark.gen_test(timeout=30)
@pytest.mark.settings(inbound_rate=2.0, inbound_burst=3)
async def test_inbound_rate_limit_answers_rate_limited_then_abuse_closes_1008(api):
    """Over the burst a request gets rate_limited; far over the rate the socket closes 1008."""
    chat = await Chat.open(api)
    ids = [await chat.send("presence", {"channel": LOBBY}) for _ in range(4)]
    events = [await chat.event() for _ in ids]
    assert [e["type"] for e in events[:3]] == ["reply"] * 3
    assert events[3]["type"] == "error" and events[3]["data"]["code"] == "rate_limited"
    assert events[3]["id"] == ids[3]
    for _ in range(70):  # 3 x 2/s x 10 s = 60 messages in the window is the abuse line
        await chat.send("presence", {"channel": LOBBY})
    assert await wait_closed(chat.conn) == (1008, "too many messages")
    await asyncio.sleep(0)
