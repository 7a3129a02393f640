"""The publisher's own channel.message and its reply leave in one send(), in that order."""

from __future__ import annotations

import json

import pytest
from conftest import next_event
from test_rooms_ws import LOBBY, Chat

from hub import transport


@pytest.mark.gen_test(timeout=30)
async def test_publish_writes_the_senders_message_and_reply_in_one_send(api, monkeypatch):
    """One write carries the sender's channel.message then its reply; others get the message."""
    ann, bob = await Chat.open(api), await Chat.open(api)
    await ann.subscribe()
    await bob.subscribe()
    writes: list[bytes] = []
    real = transport.write_frame

    def spy(stream, frame):
        writes.append(bytes(frame))
        return real(stream, frame)

    monkeypatch.setattr(transport, "write_frame", spy)
    request_id = await ann.send("publish", {"channel": LOBBY, "data": {"text": "hi"}})
    first = await ann.event("presence.joined")
    second = await ann.event("presence.joined")
    assert first["type"] == "channel.message" and first["data"]["body"] == {"text": "hi"}
    assert second["type"] == "reply" and second["id"] == request_id
    assert second["data"]["id"] == first["data"]["id"]
    assert (await bob.event("presence.joined"))["data"]["body"] == {"text": "hi"}
    both = [w for w in writes if b'"reply"' in w]
    assert len(both) == 1 and both[0].index(b'"channel.message"') < both[0].index(b'"reply"')
    assert sum(b'"channel.message"' in w for w in writes) == 2  # bob's, then ann's with her reply


@pytest.mark.gen_test(timeout=30)
async def test_publish_to_an_unsubscribed_public_room_still_gets_its_reply(api):
    """A publisher not subscribed to the room gets only the reply, and nothing is held back."""
    ann, bob = await Chat.open(api), await Chat.open(api)
    await bob.subscribe()
    reply = await ann.request("publish", {"channel": LOBBY, "data": {"n": 1}})
    assert reply["type"] == "reply" and reply["data"]["channel"] == LOBBY
    message = await next_event(bob.conn, skip=("presence.joined",))
    assert message["type"] == "channel.message" and message["data"]["body"] == {"n": 1}
    error = await ann.request("publish", {"channel": LOBBY, "data": "not an object"})
    assert error["type"] == "error" and json.dumps(error)
    await ann.quiet(bob)
