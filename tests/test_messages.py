"""Room message storage: batched writes behind the fan-out, ordering, retention."""

from __future__ import annotations

import datetime as dt

import pytest

from models.room import Room, RoomMessage
from services.messages import MessageIds


def test_message_ids_are_fixed_width_and_strictly_increasing():
    """Ids made in one millisecond or across many sort in the order they were made."""
    ids = MessageIds("a1b2c3d4e5f6")
    made = [ids.next()[0] for _ in range(5000)]
    assert made == sorted(made) and len(set(made)) == 5000
    assert {len(i) for i in made} == {24}


@pytest.mark.gen_test
async def test_many_publishes_are_written_in_few_batches(api, monkeypatch):
    """A burst of publishes is stored by a handful of database jobs, not one per message."""
    user = await api.register()
    jobs = []
    original = api.ctx.messages.run

    async def counting(fn, *args, **kwargs):
        jobs.append(fn)
        return await original(fn, *args, **kwargs)

    await api.ctx.streams.ready("room:lobby")  # publishers wait for reserved offsets
    monkeypatch.setattr(api.ctx.messages, "run", counting)
    for n in range(300):
        await api.ctx.messages.publish("lobby", user["user"]["id"], "U", {"n": n})
    await api.ctx.messages.flush()
    assert 1 <= len(jobs) <= 3
    count = await api.ctx.run(lambda: RoomMessage.select().where(RoomMessage.room == "lobby")
                              .count())
    assert count == 300


@pytest.mark.gen_test
async def test_messages_of_a_room_deleted_before_the_flush_are_dropped(api):
    """A batch holding messages of a room deleted meanwhile stores the others and not those."""
    user = await api.register()
    status, _, _ = await api.call("POST", "/api/v1/rooms", {"name": "brief"}, user["access_token"])
    assert status == 201
    for stream in ("room:brief", "room:lobby"):
        await api.ctx.streams.ready(stream)
    await api.ctx.messages.publish("brief", user["user"]["id"], "U", {"n": 1})
    await api.ctx.messages.publish("lobby", user["user"]["id"], "U", {"n": 2})
    await api.ctx.run(lambda: Room.delete().where(Room.name == "brief").execute())
    await api.ctx.messages.flush()
    rows = await api.ctx.run(lambda: [(m.room, m.body) for m in RoomMessage.select()])
    assert rows == [("lobby", '{"n":2}')]


@pytest.mark.gen_test
async def test_a_deleted_sender_keeps_their_name_on_stored_messages(api):
    """Messages whose sender was deleted before the flush are stored with the name only."""
    user = await api.register(name="Gone Soon")
    admin = await api.admin()
    await api.ctx.streams.ready("room:lobby")
    await api.ctx.messages.publish("lobby", user["user"]["id"], "Gone Soon", {"n": 1})
    status, _, _ = await api.call("DELETE", f"/api/v1/users/{user['user']['id']}",
                                  token=admin["access_token"])
    assert status == 200
    await api.ctx.messages.flush()
    (message,) = await api.ctx.messages.history("lobby", None, 10)
    assert message["from"] == {"user_id": None, "name": "Gone Soon"}


@pytest.mark.gen_test
@pytest.mark.settings(message_retention_days=7)
async def test_retention_purges_messages_older_than_the_setting(api):
    """Messages older than --message-retention-days are deleted; newer ones stay."""
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=8)
    new = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=6)

    def seed() -> None:
        for message_id, when in (("0001", old), ("0002", new)):
            RoomMessage.create(id=message_id, room="lobby", sender=None, sender_name="x",
                               body="{}", created_at=when)

    await api.ctx.run(seed)
    assert await api.ctx.messages._purge_old() == 1
    remaining = await api.ctx.run(lambda: [m.id for m in RoomMessage.select()])
    assert remaining == ["0002"]


@pytest.mark.gen_test
async def test_stored_messages_keep_the_offset_they_were_published_with(api):
    """The batch insert stores each message's stream offset, so a restart can replay it."""
    user = await api.register()
    await api.ctx.streams.ready("room:lobby")  # the verbs wait for reserved offsets too
    sent = [await api.ctx.messages.publish("lobby", user["user"]["id"], "U", {"n": n})
            for n in range(3)]
    await api.ctx.messages.flush()
    stored = await api.ctx.run(lambda: {m.id: m.offset for m in RoomMessage.select()})
    assert stored == {s["id"]: int(s["offset"]) for s in sent}
    assert sorted(stored.values()) == [int(s["offset"]) for s in sent]
