"""The recovery log: positions, trimming by size and age, recovery rules, reservations, and
(property-based) the replay-then-live merge a resuming connection sees."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hub import FakeConn

from app import make_hub
from hub.broker import MemoryBroker
from hub.client import Client
from hub.events import Event
from hub.history import Entry, MemoryLog, StreamUnavailable, parse_offset
from hub.messages import ADMINS, ALL, FEED, ToChannel, to_user


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _append(log: MemoryLog, n: int, stream: str = FEED) -> list[str]:
    return [log.append(stream, ALL, Event("system.alert", {"n": i})).offset for i in range(n)]


def test_offsets_increase_by_one_per_stream_and_streams_are_independent():
    """Each stream numbers its events 1, 2, 3... on its own, with its own epoch."""
    log = MemoryLog()
    assert _append(log, 3) == ["1", "2", "3"]
    assert _append(log, 2, "room:a") == ["1", "2"]
    assert log.position(FEED)[1] == "3" and log.position(FEED)[0] != log.position("room:a")[0]


@pytest.mark.parametrize("since", [None, "", "abc", "-1", "1.5", " 2", "9" * 30, 3])
def test_malformed_positions_are_not_recovered(since):
    """A missing, non-numeric or non-string position answers recovered false and no entries."""
    log = MemoryLog()
    _append(log, 3)
    epoch = log.position(FEED)[0]
    recovery = log.recover(FEED, since, epoch)
    assert recovery.recovered is False and recovery.entries == ()
    assert (recovery.epoch, recovery.offset) == (epoch, "3")


def test_other_epoch_and_future_offset_are_not_recovered():
    """A position of another epoch, or beyond the stream's last offset, is not recovered."""
    log = MemoryLog()
    _append(log, 3)
    epoch = log.position(FEED)[0]
    assert log.recover(FEED, "1", "someone-else").recovered is False
    assert log.recover(FEED, "4", epoch).recovered is False
    recovery = log.recover(FEED, "1", epoch)
    assert recovery.recovered and [e.offset for e in recovery.entries] == [2, 3]
    assert log.recover(FEED, "3", epoch).recovered and log.recover(FEED, "3", epoch).entries == ()


def test_size_and_age_trim_the_window():
    """Positions older than the retained window (by count or by age) are not recovered."""
    clock = Clock()
    log = MemoryLog(size=3, ttl=10, clock=clock)
    _append(log, 5)
    epoch = log.position(FEED)[0]
    assert log.recover(FEED, "1", epoch).recovered is False  # 2 was trimmed
    assert [e.offset for e in log.recover(FEED, "2", epoch).entries] == [3, 4, 5]
    clock.now += 11
    assert log.recover(FEED, "4", epoch).recovered is False  # everything aged out
    assert log.recover(FEED, "5", epoch).recovered is True  # nothing missed


def test_gaps_left_by_a_crash_are_not_recovered():
    """A position inside an uncertain range answers recovered false; one below it replays."""
    log = MemoryLog(clock=lambda: 1.0)
    entries = [Entry(o, ALL, Event("x", {"n": o}, offset=str(o)), 0.0) for o in (4, 5, 9)]
    log.restore(FEED, "e1", 9, None, entries, gaps=[(5, 8)])
    assert log.recover(FEED, "6", "e1").recovered is False
    assert log.recover(FEED, "8", "e1").recovered is False
    assert [e.offset for e in log.recover(FEED, "5", "e1").entries] == [9]
    assert [e.offset for e in log.recover(FEED, "3", "e1").entries] == [4, 5, 9]
    assert log.recover(FEED, "2", "e1").recovered is False  # below the restored window


def test_a_stream_without_reserved_offsets_is_unavailable_until_reserved():
    """With reservations on, offsets beyond the durable reservation are refused, then allowed."""
    log = MemoryLog()
    asked: list[tuple[str, int]] = []
    log.on_low, log.low_water = (lambda stream, reserved: asked.append((stream, reserved))), 2
    with pytest.raises(StreamUnavailable):
        log.append("room:a", ALL, Event("x", {}))
    log.reserve("room:a", 3)
    assert _append(log, 3, "room:a") == ["1", "2", "3"]
    with pytest.raises(StreamUnavailable):
        log.append("room:a", ALL, Event("x", {}))
    assert ("room:a", 3) in asked  # asked for more as it ran low


def test_parse_offset_accepts_only_decimal_strings():
    """Offsets are opaque decimal strings; anything else is malformed."""
    assert parse_offset("0") == 0 and parse_offset("42") == 42
    assert parse_offset("4x") is None and parse_offset(42) is None and parse_offset("") is None


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 12), ttl=st.integers(1, 20),
       steps=st.lists(st.integers(0, 5), min_size=0, max_size=40),
       since=st.integers(0, 45))
def test_recovery_is_exact_or_refused(size, ttl, steps, since):
    """Whatever the trimming, a recovered position replays every later entry exactly, in
    order; a refused one is below the retained window or beyond the stream."""
    clock = Clock()
    log = MemoryLog(size=size, ttl=ttl, clock=clock)
    appended: list[tuple[int, float]] = []
    for advance in steps:
        clock.now += advance
        event = log.append(FEED, ALL, Event("x", {}))
        appended.append((int(event.offset), clock.now))
    epoch = log.position(FEED)[0]
    recovery = log.recover(FEED, str(since), epoch)
    last = len(appended)
    retained = [o for o, at in appended[-size:] if clock.now - at <= ttl]
    expected = [o for o, _ in appended if o > since]
    recoverable = since <= last and set(expected) <= set(retained)
    assert recovery.recovered == recoverable
    assert [e.offset for e in recovery.entries] == (expected if recoverable else [])


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.one_of(st.sampled_from(["drop", "resume"]),
                              st.sampled_from(["all", "me", "other", "admins"])),
                    min_size=1, max_size=60),
       size=st.integers(2, 30))
def test_replay_then_live_never_gaps_or_duplicates(ops, size):
    """A connection that drops and resumes at any points receives exactly the events meant
    for it, in order, once each, or is told recovered false (and never gets a duplicate)."""
    hub = make_hub(MemoryBroker(log=MemoryLog(size=size)))
    hub.presence.attach(lambda *args: None)
    targets = {"all": ALL, "me": to_user(1), "other": to_user(2), "admins": ADMINS}
    meant: list[int] = []
    received: list[int] = []
    position: dict[str, str] = {}
    lost = False
    conn, client = None, None

    def connect() -> None:
        nonlocal conn, client, lost
        conn = FakeConn()
        client = Client(conn, 1, "user")
        recovery, missed = hub.recover(client, FEED, position.get("offset"),
                                       position.get("epoch"))
        if position and not recovery.recovered:
            lost = True
        for event in missed:
            conn.write_frame(event.frame)
        hub.register(client)
        position.update(epoch=recovery.epoch, offset=recovery.offset)

    def drain() -> None:
        for encoded in conn.sent:
            event = json.loads(encoded.text)
            received.append(event["data"]["n"])
            position["offset"] = event["offset"]
        conn.sent.clear()

    connect()
    for n, op in enumerate(ops):
        if op == "drop":
            if client.id in hub.clients:
                drain()
                hub.unregister(client)
        elif op == "resume":
            if client.id not in hub.clients:
                connect()
        else:
            hub.publish(Event("x", {"n": n}), targets[op], logged=True)
            if op in ("all", "me"):
                meant.append(n)
    if client.id not in hub.clients:
        connect()
    drain()
    assert len(received) == len(set(received)) and received == sorted(received)
    if not lost:
        assert received == meant
    else:
        assert set(received) <= set(meant)


def test_room_entries_replay_to_a_joining_connection_but_skip_its_own_typing_rules():
    """A joining connection counts as subscribed to the room it is joining, and only it."""
    hub = make_hub(MemoryBroker())
    hub.presence.attach(lambda *args: None)
    hub.publish(Event("channel.message", {"n": 1}, channel="room:a"), (ToChannel("room:a"),),
                logged=True)
    client = Client(FakeConn(), 5, "user")
    epoch = hub.broker.log.position("room:a")[0]
    recovery, missed = hub.recover(client, "room:a", "0", epoch, joining=True)
    assert recovery.recovered and len(missed) == 1
    assert hub.recover(client, "room:a", "0", epoch)[1] == []  # not joining: not its audience


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 15), count=st.integers(0, 40), before=st.none() | st.integers(0, 45),
       limit=st.integers(1, 20))
def test_history_reads_return_the_newest_retained_entries_before_a_position(size, count, before,
                                                                          limit):
    """before(offset, limit) returns the newest retained entries older than offset, newest
    first, at most limit of them."""
    log = MemoryLog(size=size)
    _append(log, count)
    retained = list(range(max(1, count - size + 1), count + 1))
    expected = [o for o in reversed(retained) if before is None or o < before][:limit]
    assert [e.offset for e in log.before(FEED, before, limit)] == expected


def test_an_entry_is_encoded_once_for_every_replay():
    """Replaying one entry to many connections shares one encoding (a reconnect storm)."""
    hub = make_hub(MemoryBroker())
    hub.presence.attach(lambda *args: None)
    hub.publish(Event("system.alert", {"message": "x"}), ALL, logged=True)
    epoch = hub.broker.log.position(FEED)[0]
    first = hub.recover(Client(FakeConn(), 1, "user"), FEED, "0", epoch)[1]
    second = hub.recover(Client(FakeConn(), 2, "user"), FEED, "0", epoch)[1]
    assert first[0] is second[0] and json.loads(first[0].text)["offset"] == "1"


def test_a_sweep_ages_out_streams_nobody_touches():
    """Entries past the TTL leave every stream at the sweep, not only when the stream is used
    again: a quiet (or deleted) room keeps nothing older than the TTL; its position stays."""
    clock = Clock()
    log = MemoryLog(size=100, ttl=10, clock=clock)
    for stream in ("room:quiet", "room:gone"):
        for n in range(4):
            log.append(stream, ALL, Event("x", {"n": n}))
    clock.now += 5
    log.append("room:quiet", ALL, Event("x", {"n": 4}))
    assert log.sweep() == 0  # nothing is older than 10 s yet
    clock.now += 6
    assert log.sweep() == 8  # the first four of each; room:quiet keeps its fifth
    assert [len(log.streams[s].entries) for s in ("room:quiet", "room:gone")] == [1, 0]
    assert log.position("room:gone")[1] == "4" and log.streams["room:gone"].floor == 4
    clock.now += 10
    assert log.sweep() == 1 and not log.streams["room:quiet"].entries


@pytest.mark.gen_test
async def test_the_server_sweeps_its_memory_log_while_it_runs(api):
    """A started server sweeps its recovery log every minute."""
    sweeper = api.ctx.sweeper
    assert sweeper is not None and sweeper.is_running()
    assert sweeper.callback_time == 60_000 and sweeper.callback == api.ctx.broker.log.sweep
