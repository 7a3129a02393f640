"""The shared heartbeat: pings, pong deadlines and token expiry of every socket on one timer."""

from __future__ import annotations

import asyncio
import time

import pytest
from wsutil import RawClient, wait_until

from edge.heartbeat import Beat, Heartbeat


class FakeProtocol:
    """What the wheel uses of the WebSocket protocol (edge.heartbeat.Pinged)."""

    def __init__(self) -> None:
        self.pong_received = False
        self._ping_coroutine = None
        self.pings = 0
        self.closed: str | None = None

    def is_closing(self) -> bool:
        return self.closed is not None

    def ping(self) -> None:
        self.pong_received = False
        self.pings += 1

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed = reason
        if self._ping_coroutine is not None:  # as Tornado's close() does with its ping task
            self._ping_coroutine.cancel()
            self._ping_coroutine = None


class FakeHandler:
    def __init__(self) -> None:
        self.expired = 0

    def token_expired(self) -> None:
        self.expired += 1


def joined(heartbeat: Heartbeat) -> FakeProtocol:
    protocol = FakeProtocol()
    protocol._ping_coroutine = heartbeat.join(protocol)
    return protocol


@pytest.mark.parametrize("interval,timeout,ticks,tick,deadline", [
    (54.0, 6.0, 54, 1.0, 6), (25.0, 25.0, 25, 1.0, 25), (0.2, 0.2, 1, 0.2, 1),
    (2.5, 1.0, 2, 1.25, 1), (10.0, 30.0, 10, 1.0, 10), (10.0, 2.5, 10, 1.0, 3)])
def test_the_wheel_divides_the_interval_into_ticks_of_about_a_second(interval, timeout, ticks,
                                                                     tick, deadline):
    heartbeat = Heartbeat(interval, timeout)
    assert (heartbeat.ticks, heartbeat.tick, heartbeat.deadline) == (ticks, tick, deadline)


@pytest.mark.gen_test
async def test_a_socket_is_pinged_once_per_turn_and_stays_while_it_answers():
    heartbeat = Heartbeat(5.0, 2.0)
    protocol = joined(heartbeat)
    for turn in range(1, 4):
        for _ in range(4):
            heartbeat.run()
            assert protocol.pings == turn - 1
        heartbeat.run()  # the fifth tick of the turn: its slot
        assert protocol.pings == turn
        protocol.pong_received = True  # the pong comes back before the deadline
    assert protocol.closed is None
    protocol.close()
    assert heartbeat.members == 0 and heartbeat._timer is None


@pytest.mark.gen_test
async def test_a_socket_without_a_pong_is_closed_at_its_deadline_not_before():
    heartbeat = Heartbeat(5.0, 2.0)
    mute, answering = joined(heartbeat), joined(heartbeat)
    for _ in range(5):
        heartbeat.run()
    assert mute.pings == answering.pings == 1
    answering.pong_received = True
    heartbeat.run()  # one tick after the ping: the deadline is two
    assert mute.closed is None
    heartbeat.run()
    assert mute.closed == "ping timed out" and answering.closed is None
    assert heartbeat.members == 1  # the closed one left
    for _ in range(3):  # the answering socket's next ping comes a whole turn after its last
        heartbeat.run()
    assert answering.pings == 2 and mute.pings == 1
    answering.close()


@pytest.mark.gen_test
async def test_sockets_joining_at_different_ticks_are_pinged_at_different_ticks():
    heartbeat = Heartbeat(4.0, 4.0)
    protocols = []
    for i in range(4):  # one joins per tick
        if i:
            heartbeat.run()
        protocols.append(joined(heartbeat))
    for _ in range(4):
        before = [p.pings for p in protocols]
        heartbeat.run()
        assert sum(p.pings for p in protocols) - sum(before) == 1  # one socket per tick
        for p in protocols:
            p.pong_received = True
    assert all(p.pings == 1 for p in protocols)
    for p in protocols:
        p.close()
    assert heartbeat.members == 0


@pytest.mark.gen_test
async def test_token_expiry_calls_each_handler_once_after_its_second():
    heartbeat = Heartbeat(54.0, 6.0)
    now = time.time()
    soon, later, refreshed = FakeHandler(), FakeHandler(), FakeHandler()
    heartbeat.expire(soon, now + 10)
    heartbeat.expire(later, now + 20)
    key = heartbeat.expire(refreshed, now + 10)
    heartbeat.forget(refreshed, key)
    heartbeat.expire(refreshed, now + 30)  # an auth.refresh moved it
    assert heartbeat.members == 3 and heartbeat._timer is not None
    heartbeat._expire(now + 9)
    assert (soon.expired, later.expired, refreshed.expired) == (0, 0, 0)
    heartbeat._expire(now + 11)
    assert (soon.expired, later.expired, refreshed.expired) == (1, 0, 0)
    heartbeat._expire(now + 31)
    heartbeat._expire(now + 40)
    assert (soon.expired, later.expired, refreshed.expired) == (1, 1, 1)
    assert heartbeat.members == 0 and heartbeat._timer is None
    heartbeat.forget(soon, key)  # a late forget (the socket closes after expiring) is a no-op
    assert heartbeat.members == 0


@pytest.mark.gen_test(timeout=30)
async def test_open_sockets_share_the_heartbeat_and_own_no_ping_task(api):
    """Every open socket is on the application's wheel; none runs Tornado's ping coroutine
    or holds a timer of its own, and closing them empties the wheel and stops its timer."""
    heartbeat = api.ctx.heartbeat
    users = [await api.register() for _ in range(5)]
    conns = [await api.ws(u["access_token"]) for u in users]  # each has read its welcome
    protocols = [c.conn.ws_connection for c in api.ctx.hub.clients.values()]
    assert len(protocols) == 5
    assert all(isinstance(p._ping_coroutine, Beat) for p in protocols)
    assert not [t for t in asyncio.all_tasks() if "periodic_ping" in repr(t.get_coro())]
    assert heartbeat.members == 10  # a place on the wheel and a token expiry each
    for conn in conns:
        conn.close()
    await wait_until(lambda: not api.ctx.hub.clients, what="all closed")
    assert heartbeat.members == 0 and heartbeat._timer is None


@pytest.mark.gen_test(timeout=30)
@pytest.mark.settings(ping_interval=0.3, ping_timeout=0.3)
async def test_a_socket_is_pinged_about_every_interval(api):
    """Counted on the wire: a raw client sees a ping about every --ping-interval (it answers
    none, so the first deadline closes it: 1000 "ping timed out")."""
    user = await api.register()
    raw = await RawClient.connect(api, user["access_token"])
    began = time.monotonic()
    opcode, _ = await asyncio.wait_for(raw.read_frame(), 5)
    while opcode != 0x9:
        opcode, _ = await asyncio.wait_for(raw.read_frame(), 5)
    first_ping = time.monotonic() - began
    while opcode != 0x8:
        opcode, payload = await asyncio.wait_for(raw.read_frame(), 5)
    closed = time.monotonic() - began
    assert 0.0 < first_ping < 1.5
    assert 0.2 < closed - first_ping < 1.5
    assert payload[2:] == b"ping timed out"
    raw.close()
