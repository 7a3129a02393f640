"""The outbox and the relay in one process: feed events commit with their change, are
published once each (a kick and a poll never twice), marked, and found again after a crash;
stream reservations keep offsets unique across restarts."""

from __future__ import annotations

import asyncio

import pytest
from conftest import next_event
from test_hub import FakeConn

import services.health
from app import make_context
from hub import feed
from hub.client import Client
from hub.messages import FEED
from models.db import write_tx
from models.outbox import OutboxEvent, StreamState
from services.outbox import stage


def _stage_alerts(count: int, start: int = 0) -> list:
    with write_tx():
        rows = []
        for n in range(start, start + count):
            rows += stage(feed.system_alert(str(n), "normal", {}, 1))
        return rows


def _listen(ctx) -> FakeConn:
    conn = FakeConn()
    ctx.hub.register(Client(conn, 99, "user"))
    return conn


def _numbers(conn: FakeConn) -> list[int]:
    import json

    return [int(json.loads(e.text)["data"]["message"]) for e in conn.sent
            if e.type == "system.alert"]


async def _until(condition, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.gen_test(timeout=30)
async def test_a_change_and_its_event_commit_together_and_the_row_is_marked(api):
    """Registering writes a user.created row in the same commit; the relay marks it with the
    offset clients received."""
    admin = await api.admin()
    conn = await api.ws(admin["access_token"])
    user = await api.register()
    from conftest import next_event

    event = await next_event(conn)
    assert event["type"] == "user.created" and event["data"]["user_id"] == user["user"]["id"]
    await api.ctx.relay.flush()
    row = await api.ctx.run(lambda: OutboxEvent.get(OutboxEvent.type == "user.created",
                                                    OutboxEvent.data.contains(user["user"]["email"])))
    assert str(row.offset) == event["offset"] and row.published_at is not None


@pytest.mark.gen_test(timeout=30)
async def test_a_kick_racing_a_poll_publishes_each_row_once(api):
    """Rows handed to the relay while a poll reads them too reach clients exactly once."""
    ctx = api.ctx
    conn = _listen(ctx)
    rows = await ctx.run(_stage_alerts, 50)
    poll = asyncio.ensure_future(ctx.relay.poll())
    ctx.relay.publish(rows[:25])
    await poll
    ctx.relay.publish(rows)  # a second kick of the same rows
    await ctx.relay.poll()
    await ctx.relay.flush()
    assert _numbers(conn) == list(range(50))
    offsets = await ctx.run(lambda: [r.offset for r in OutboxEvent.select()
                                     .where(OutboxEvent.type == "system.alert")
                                     .order_by(OutboxEvent.offset)])
    assert None not in offsets and len(set(offsets)) == 50


@pytest.mark.gen_test(timeout=30)
async def test_rows_committed_without_a_kick_are_published_by_the_poll(api):
    """A row whose hand-over was lost (committed, never kicked) is published within a poll."""
    conn = _listen(api.ctx)
    await api.ctx.run(_stage_alerts, 3)
    await _until(lambda: len(_numbers(conn)) == 3)
    assert _numbers(conn) == [0, 1, 2]


@pytest.mark.gen_test(timeout=60)
async def test_restart_after_a_crash_never_reuses_an_offset_and_refuses_uncertain_positions(
        api, settings):
    """After a crash (no clean stop) the next process publishes the rows left unpublished
    with new offsets above the reservation; a position inside the uncertain range answers
    recovered false, a position at or below the last marked offset replays exactly."""
    first = api.ctx
    first.relay.publish(await first.run(_stage_alerts, 5))
    await first.relay.flush()
    durable = int(first.broker.log.position(FEED)[1])
    epoch = first.broker.log.position(FEED)[0]
    # Published but never marked: the process dies before its marks are written.
    first.relay.stop_polling()
    rows = await first.run(_stage_alerts, 3, 5)
    first.relay._marks.clear()  # noqa: SLF001 - the crash loses the pending marks
    first.relay.publish(rows)
    first.relay._marks.clear()  # noqa: SLF001
    uncertain = first.broker.log.position(FEED)[1]
    reserved = await first.run(lambda: StreamState.get_by_id(FEED).reserved)
    second = make_context(settings)
    await second.start()
    try:
        assert second.broker.log.position(FEED)[0] == epoch  # the feed keeps its epoch
        conn = FakeConn()
        recovery, missed = second.hub.recover(Client(conn, 99, "user"), FEED, uncertain, epoch)
        assert recovery.recovered is False and missed == []
        recovery, missed = second.hub.recover(Client(conn, 99, "user"), FEED, str(durable - 2),
                                              epoch)
        assert recovery.recovered is True
        import json

        got = [json.loads(e.text) for e in missed]
        assert [int(e["data"]["message"]) for e in got] == [3, 4, 5, 6, 7]
        new_offsets = [int(e["offset"]) for e in got[2:]]
        assert min(new_offsets) > reserved  # republished above the old reservation
        await second.relay.flush()
        marked = await second.run(lambda: sorted(r.offset for r in OutboxEvent.select()))
        assert len(marked) == len(set(marked)) == 8
    finally:
        await second.relay.close()
        second.shutdown_pools()


@pytest.mark.gen_test(timeout=60)
async def test_clean_restart_keeps_every_epoch_and_recovers_exactly(api, settings):
    """After a clean stop, the feed and each room keep their epoch and recent history."""
    first = api.ctx
    first.relay.publish(await first.run(_stage_alerts, 4))
    await first.streams.ready("room:lobby")
    user = await api.register()
    await first.messages.publish("lobby", user["user"]["id"], "U", {"n": 1})
    feed_epoch, _ = first.broker.log.position(FEED)
    room_epoch, room_offset = first.broker.log.position("room:lobby")
    await first.stop()
    second = make_context(settings)
    await second.start()
    try:
        assert second.broker.log.position(FEED)[0] == feed_epoch
        assert second.broker.log.position("room:lobby") == (room_epoch, room_offset)
        client = Client(FakeConn(), 99, "user")
        recovery, missed = second.hub.recover(client, "room:lobby", "0", room_epoch,
                                              joining=True)
        assert recovery.recovered and len(missed) == 1
        recovery, missed = second.hub.recover(client, FEED, "0", feed_epoch)
        assert recovery.recovered and len(missed) == 4
    finally:
        await second.relay.close()
        second.shutdown_pools()


@pytest.mark.gen_test(timeout=60)
async def test_rooms_get_a_new_epoch_after_a_crash(api, settings):
    """A room stream of a process that did not stop cleanly starts over with a new epoch."""
    first = api.ctx
    await first.streams.ready("room:lobby")
    user = await api.register()
    await first.messages.publish("lobby", user["user"]["id"], "U", {"n": 1})
    await first.messages.flush()
    epoch, offset = first.broker.log.position("room:lobby")
    second = make_context(settings)
    await second.start()
    try:
        new_epoch, new_offset = second.broker.log.position("room:lobby")
        assert new_epoch != epoch and int(new_offset) >= int(offset)
        recovery, _ = second.hub.recover(Client(FakeConn(), 9, "user"), "room:lobby", offset,
                                         epoch, joining=True)
        assert recovery.recovered is False
    finally:
        await second.relay.close()
        second.shutdown_pools()


@pytest.mark.gen_test(timeout=30)
async def test_purge_deletes_only_rows_published_before_the_retention(api):
    """The hourly purge removes published rows older than the retention, nothing else."""
    ctx = api.ctx
    ctx.relay.publish(await ctx.run(_stage_alerts, 2))
    await ctx.relay.flush()
    await ctx.run(_stage_alerts, 1, 2)  # committed, not yet published: never purged
    old = await ctx.run(lambda: OutboxEvent.select().where(OutboxEvent.offset.is_null(False))
                        .order_by(OutboxEvent.id).first().event_id)
    await ctx.run(lambda: OutboxEvent.update(published_at=1.0)
                  .where(OutboxEvent.event_id == old).execute())
    ctx.relay.stop_polling()
    assert await ctx.relay.purge() == 1
    left = await ctx.run(lambda: [r.event_id for r in OutboxEvent.select()])
    assert old not in left and len(left) == 2


@pytest.mark.gen_test(timeout=60)
async def test_rooms_are_not_saved_clean_when_messages_were_dropped_unsaved(api, settings):
    """A stop after room messages were dropped unsaved (database down too long) gives the
    rooms a new epoch at the next start, while the feed, fully stored, keeps its own."""
    first = api.ctx
    await first.streams.ready("room:lobby")
    user = await api.register()
    await first.messages.publish("lobby", user["user"]["id"], "U", {"n": 1})
    first.messages.lost = 1  # as if the write-behind queue had overflowed
    feed_epoch = first.broker.log.position(FEED)[0]
    room_epoch = first.broker.log.position("room:lobby")[0]
    await first.stop()
    second = make_context(settings)
    await second.start()
    try:
        assert second.broker.log.position(FEED)[0] == feed_epoch
        assert second.broker.log.position("room:lobby")[0] != room_epoch
    finally:
        await second.relay.close()
        second.shutdown_pools()


@pytest.mark.gen_test
async def test_health_flip_reaches_admins_at_once_when_the_outbox_cannot_store_it(
    api, monkeypatch
):
    """With the database unwritable, a health flip is still sent to admins at once, unlogged."""
    admin = await api.admin()
    conn = await api.ws(admin["access_token"])

    async def broken(events):
        raise RuntimeError("database is down")

    monkeypatch.setattr(api.ctx.health.relay, "emit", broken)
    monkeypatch.setattr(services.health, "_ping_database", _raise)
    assert (await api.ctx.health.check())[0] == "error"
    event = await next_event(conn)
    assert event["type"] == "health.status.changed" and event["data"]["status"] == "error"
    assert "offset" not in event


def _raise() -> None:
    raise RuntimeError("database is down")
