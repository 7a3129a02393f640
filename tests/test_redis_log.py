"""The Redis broker's ordering rules on a real Redis, in one process: the Lua step numbers and
logs, each node applies a stream in offset order exactly once, fills gaps from the log, and
starts over when Redis lost the stream (a new epoch)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from cluster import need_redis

from hub import codec
from hub.events import Event
from hub.messages import ALL, CloseUser, Message, Publication, SetRole, ToChannel
from hub.redis.broker import RedisBroker
from hub.redis.log import RedisLog

STREAM = "room:x"


async def _broker() -> tuple[RedisBroker, list[Message]]:
    from redis.asyncio import Redis

    url = need_redis()
    broker = RedisBroker(Redis.from_url(url), Redis.from_url(url),
                         f"t{uuid.uuid4().hex[:12]}", size=100, ttl=60)
    got: list[Message] = []
    broker.attach(lambda message: got.append(message) or 1)
    await broker.start()
    return broker, got


async def _cleanup(broker: RedisBroker) -> None:
    keys = [k async for k in broker.redis.scan_iter(f"{broker.keys.prefix}:*")]
    if keys:
        await broker.redis.delete(*keys)
    await broker.close()
    await broker.redis.aclose()


def _publication(n: int) -> Publication:
    return Publication(Event("channel.message", {"n": n}, channel=STREAM),
                       (ToChannel(STREAM),), STREAM, True)


async def _wait(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _offsets(messages: list) -> list[int]:
    return [int(m.event.offset) for m in messages if isinstance(m, Publication)]


@pytest.mark.gen_test(timeout=30)
async def test_lua_step_numbers_logs_and_publishes_and_every_node_applies_in_order():
    """Publications get consecutive offsets from Redis, come back on the bus in that order
    with the same epoch, and an idempotency key seen before publishes nothing again."""
    broker, got = await _broker()
    try:
        offsets = [(await broker.publish_logged(_publication(n)))[0] for n in range(5)]
        assert offsets == ["1", "2", "3", "4", "5"]
        again = await broker.publish_logged(_publication(9), key="same")
        repeat = await broker.publish_logged(_publication(10), key="same")
        assert again == repeat == ("6", 0)
        await _wait(lambda: len(got) == 6)
        await asyncio.sleep(0.2)
        assert _offsets(got) == [1, 2, 3, 4, 5, 6]
        assert [m.event.data["n"] for m in got] == [0, 1, 2, 3, 4, 9]
        assert await broker.redis.xlen(broker.keys.log(STREAM)) == 6
        epoch, last = broker.log.position(STREAM)
        assert last == "6" and epoch == (await broker.redis.hget(
            broker.keys.meta(STREAM), "e")).decode()
    finally:
        await _cleanup(broker)


@pytest.mark.gen_test(timeout=30)
async def test_out_of_order_and_repeated_bus_messages_apply_once_in_offset_order():
    """A node that receives 1, 3, 3, 2, 5 applies 1..5 once each, in order: 4 is read from
    the stream's log, the repeated 3 and the late 2 are not applied twice."""
    broker, _ = await _broker()
    try:
        sent = [_publication(n) for n in range(5)]
        for publication in sent:
            await broker.publish_logged(publication)
        epoch = broker.log.position(STREAM)[0]
        node = RedisLog(broker.redis, broker.keys, 100, 60)
        applied: list[Publication] = []
        node.deliver = applied.append
        node.mirror.restore(STREAM, epoch, 0, None, [])
        for offset in (1, 3, 3, 2, 5):
            node.receive(STREAM, epoch, offset, sent[offset - 1])
        await _wait(lambda: len(applied) >= 5)
        await asyncio.sleep(0.1)
        assert _offsets(applied) == [1, 2, 3, 4, 5]
        assert [p.event.data["n"] for p in applied] == [0, 1, 2, 3, 4]
        recovery = node.recover(STREAM, "2", epoch)
        assert recovery.recovered and [e.offset for e in recovery.entries] == [3, 4, 5]
    finally:
        await _cleanup(broker)


@pytest.mark.gen_test(timeout=30)
async def test_a_gap_gone_from_redis_closes_the_streams_followers_and_goes_on():
    """When the entries of a gap are no longer in Redis, the node tells its followers of
    that stream to resume (never a silent gap) and applies what comes next."""
    broker, _ = await _broker()
    try:
        sent = [_publication(n) for n in range(5)]
        for publication in sent:
            await broker.publish_logged(publication)
        epoch = broker.log.position(STREAM)[0]
        await broker.redis.xtrim(broker.keys.log(STREAM), maxlen=0)
        node = RedisLog(broker.redis, broker.keys, 100, 60)
        applied: list[Publication] = []
        lost: list[str] = []
        node.deliver, node.on_lost = applied.append, lost.append
        node.mirror.restore(STREAM, epoch, 0, None, [])
        node.receive(STREAM, epoch, 1, sent[0])
        node.receive(STREAM, epoch, 5, sent[4])
        await _wait(lambda: len(applied) == 2)
        assert _offsets(applied) == [1, 5] and lost == [STREAM]
        assert not node.recover(STREAM, "1", epoch).recovered
    finally:
        await _cleanup(broker)


@pytest.mark.gen_test(timeout=30)
async def test_redis_losing_a_stream_starts_a_new_epoch_on_every_node():
    """With the stream's keys gone (a Redis restart without persistence), the next publish
    starts a new epoch at offset 1; the node follows it and an old position is not
    recovered."""
    broker, got = await _broker()
    try:
        await broker.publish_logged(_publication(0))
        await broker.publish_logged(_publication(1))
        await _wait(lambda: len(got) == 2)
        old_epoch = broker.log.position(STREAM)[0]
        await broker.redis.delete(broker.keys.meta(STREAM), broker.keys.log(STREAM))
        assert (await broker.publish_logged(_publication(2)))[0] == "1"
        await _wait(lambda: len(got) == 3)
        new_epoch, last = broker.log.position(STREAM)
        assert new_epoch != old_epoch and last == "1"
        assert _offsets(got) == [1, 2, 1]
        assert not broker.log.recover(STREAM, "2", old_epoch).recovered
        assert broker.log.recover(STREAM, "0", new_epoch).recovered
    finally:
        await _cleanup(broker)


def test_codec_frames_on_the_bus_carry_offset_and_epoch_outside_the_event():
    """A logged bus message is `<offset>:<epoch>:<codec frame>` and decodes to the
    publication without an offset (the node's log sets it)."""
    frame = codec.encode(Publication(Event("system.alert", {"n": 1}), ALL, "feed", True), "n1")
    head, epoch, body = (b"7:abc:" + frame).split(b":", 2)
    node, message = codec.decode(body)
    assert (head, epoch, node) == (b"7", b"abc", "n1")
    assert isinstance(message, Publication) and message.event.offset is None


@pytest.mark.gen_test(timeout=30)
async def test_a_node_whose_bus_was_cut_applies_the_controls_and_events_it_missed(monkeypatch):
    """Controls and publications sent while one node's pub/sub connection is down (killed
    with CLIENT KILL ID, reconnecting after 1 s) reach that node after it resubscribes,
    once each and in order."""
    from redis.asyncio import Redis

    monkeypatch.setattr("hub.redis.broker.backoff", lambda attempt: 1.0)
    url = need_redis()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    sender = RedisBroker(Redis.from_url(url), Redis.from_url(url), prefix)
    sender.attach(lambda message: 0)
    name = f"{prefix}-bus"
    node = RedisBroker(Redis.from_url(url), Redis.from_url(url, client_name=name), prefix)
    got: list[Message] = []
    node.attach(lambda message: got.append(message) or 1)
    try:
        await sender.start()
        await node.start()
        sender.publish(SetRole(1, "admin"))
        await sender.publish_logged(_publication(0))
        await _wait(lambda: len(got) == 2)
        clients = await sender.redis.client_list(_type="pubsub")
        bus = [c["id"] for c in clients if c.get("name") == name]
        assert len(bus) == 1
        await sender.redis.client_kill_filter(_id=bus[0])
        await _wait(lambda: not node.listening)
        sender.publish(SetRole(1, "user"))
        await sender.publish_logged(_publication(1))
        sender.publish(CloseUser(1))
        await asyncio.sleep(0.3)
        assert len(got) == 2  # nothing arrives while the bus is down
        await _wait(lambda: len(got) == 5)
        await asyncio.sleep(0.2)
        controls = [m for m in got if not isinstance(m, Publication)]
        assert controls == [SetRole(1, "admin"), SetRole(1, "user"), CloseUser(1)]
        assert [m.event.data["n"] for m in got if isinstance(m, Publication)] == [0, 1]
        assert _offsets(got) == [1, 2]
    finally:
        await node.close()
        await node.redis.aclose()
        await _cleanup(sender)


@pytest.mark.gen_test(timeout=30)
async def test_a_sweep_ages_out_the_mirror_as_redis_ages_out_its_log():
    """The node's mirror of a stream nobody touches again drops entries past the TTL at the
    sweep; its position stays, so a resume from it answers recovered false, not a gap."""
    broker, got = await _broker()
    try:
        for n in range(3):
            await broker.publish_logged(_publication(n))
        await _wait(lambda: len(got) == 3)
        mirror = broker.log.mirror
        assert len(mirror.streams[STREAM].entries) == 3 and broker.log.sweep() == 0
        mirror.clock = lambda: 10**12  # far past the 60 s TTL
        assert broker.log.sweep() == 3 and not mirror.streams[STREAM].entries
        assert broker.log.position(STREAM)[1] == "3"
    finally:
        await _cleanup(broker)
