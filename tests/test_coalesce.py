"""Coalesced writes: the events of one IOLoop iteration leave each socket in one send()."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import next_event
from wsutil import RawClient, wait_until

from hub import transport
from hub.disconnect import SESSION_REVOKED
from hub.events import Event
from hub.messages import CloseSession


class CountingSocket:
    """Wraps a server-side socket and records the size of every send() it is given."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.sends: list[int] = []

    def send(self, data: Any, *args: Any) -> int:
        self.sends.append(len(data))
        return self._sock.send(data, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def count_sends(api, client_id: str) -> CountingSocket:
    """Puts a CountingSocket under the IOStream of the server side of one connection, and
    under the hub's direct path to it."""
    client = api.ctx.hub.clients[client_id]
    stream = client.conn.ws_connection.stream
    counting = CountingSocket(stream.socket)
    stream.socket = counting
    if client.sock is not None:
        client.sock = counting
    return counting


async def open_counted(api, token: str) -> tuple[RawClient, str, CountingSocket]:
    """Opens a /ws connection; returns it, its client id and the counter of its sends."""
    raw = await RawClient.connect(api, token)
    await wait_until(lambda: raw.client_id in api.ctx.hub.clients, what="registered")
    return raw, raw.client_id, count_sends(api, raw.client_id)


async def alerts(raw: RawClient, count: int) -> list[dict[str, Any]]:
    """Reads count system.alert events (skipping presence), failing after 5 s."""
    out = []
    while len(out) < count:
        opcode, payload = await asyncio.wait_for(raw.read_frame(), 5)
        assert opcode == 0x1, (opcode, payload)
        event = json.loads(payload)
        if event["type"] == "system.alert":
            out.append(event)
    return out


def burst(api, first: int, count: int, pad: str = "") -> None:
    """Publishes count alerts to everyone in this IOLoop iteration (no await in between)."""
    for seq in range(first, first + count):
        api.ctx.hub.broadcast_to_all("system.alert", {"message": str(seq), "pad": pad})


@pytest.mark.gen_test(timeout=30)
async def test_a_burst_of_k_events_to_n_sockets_costs_two_sends_per_socket(api):
    """20 events published in one iteration reach each of 4 sockets in two send()s, in order:
    the first event at once, the other 19 held and joined at the end of the iteration."""
    users = [await api.register() for _ in range(4)]
    opened = [await open_counted(api, u["access_token"]) for u in users]
    await asyncio.sleep(0.05)  # presence announcements of the connects have gone out
    for _, _, counter in opened:
        counter.sends.clear()
    burst(api, 0, 20)
    assert all(len(counter.sends) == 1 for _, _, counter in opened)  # the first event only
    for raw, _, counter in opened:
        got = await alerts(raw, 20)
        assert [e["data"]["message"] for e in got] == [str(i) for i in range(20)]
        assert len(counter.sends) == 2, counter.sends
        assert counter.sends[1] > 18 * counter.sends[0]  # 19 frames of about the same size
        raw.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_lone_event_leaves_at_once_and_a_second_at_the_end_of_the_iteration(api):
    """The first event of an iteration is written during the publish; a second one is held
    only until the callbacks already queued have run: one yield, no timer."""
    user = await api.register()
    raw, _, counter = await open_counted(api, user["access_token"])
    await asyncio.sleep(0.05)
    counter.sends.clear()
    flushes = api.ctx.hub.writes.flushes
    burst(api, 7, 1)
    assert len(counter.sends) == 1  # written during the publish itself
    burst(api, 8, 1)
    assert len(counter.sends) == 1  # held
    await asyncio.sleep(0)  # the flush was queued before this task resumes
    assert api.ctx.hub.writes.flushes == flushes + 1
    assert len(counter.sends) == 2
    assert [e["data"]["message"] for e in await alerts(raw, 2)] == ["7", "8"]
    raw.close()


@pytest.mark.gen_test(timeout=30)
async def test_held_frames_are_written_once_they_reach_64_kib(api):
    """A burst larger than 64 KiB is written in sends of about 64 KiB during the iteration."""
    user = await api.register()
    raw, _, counter = await open_counted(api, user["access_token"])
    await asyncio.sleep(0.05)
    counter.sends.clear()
    pad = "x" * 10_000
    for seq in range(31):
        burst(api, seq, 1, pad)
        if seq == 6:  # the first at once, then 6 frames of about 10 KiB: still held
            assert len(counter.sends) == 1
    # 30 held frames of ~10 KiB: written each time 64 KiB was reached, before the iteration
    # ended (4 x 7 frames), and the last 2 at its end.
    assert len(counter.sends) == 5, counter.sends
    assert all(transport.FLUSH_BYTES <= n < transport.FLUSH_BYTES + 10_200
               for n in counter.sends[1:5])
    got = await alerts(raw, 31)
    assert [e["data"]["message"] for e in got] == [str(i) for i in range(31)]
    assert len(counter.sends) == 6
    raw.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_close_after_a_burst_comes_after_its_events(api):
    """Events held in the iteration go out before the close frame of a revoked session."""
    user = await api.register()
    raw, client_id, _ = await open_counted(api, user["access_token"])
    session = api.ctx.hub.clients[client_id].session_id
    burst(api, 0, 10)
    api.ctx.hub.control(CloseSession(session, SESSION_REVOKED))
    got = await alerts(raw, 10)
    assert [e["data"]["message"] for e in got] == [str(i) for i in range(10)]
    opcode, payload = await asyncio.wait_for(raw.read_frame(), 5)
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == SESSION_REVOKED.code
    raw.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_reply_keeps_its_place_after_events_of_the_same_iteration(api):
    """A reply written after held events of the same iteration arrives after them."""
    admin = await api.admin()
    conn = await api.ws(admin["access_token"])
    handler = next(iter(api.ctx.hub.clients.values())).conn
    burst(api, 0, 3)
    handler.send(Event("reply", {"n": 1}).encode())  # as on_message writes a reply
    got = [await next_event(conn) for _ in range(4)]
    assert [e["type"] for e in got] == ["system.alert"] * 3 + ["reply"]
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_slow_consumer_is_still_closed_with_1013_when_writes_are_coalesced(api):
    """A socket that stops reading is closed as a slow consumer; a reader gets every event."""
    stalled_user, reader_user = await api.register(), await api.register()
    stalled = await RawClient.connect(api, stalled_user["access_token"], rcvbuf=4096)
    reader, _, _ = await open_counted(api, reader_user["access_token"])
    pad = "p" * 4000
    sent = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    read: list[dict[str, Any]] = []
    while stalled.client_id in api.ctx.hub.clients:
        assert loop.time() < deadline, f"not dropped after {sent} events"
        burst(api, sent, 20, pad)
        sent += 20
        read += await alerts(reader, 20)
    assert api.ctx.hub.get_stats()["slow_consumers_dropped"] == 1
    assert [e["data"]["message"] for e in read] == [str(i) for i in range(sent)]
    stalled.close()
    reader.close()


@pytest.mark.gen_test(timeout=30)
async def test_nothing_follows_the_close_frame_while_the_client_has_not_answered(api):
    """A broadcast after the server's close frame writes nothing more to that socket, though
    it stays registered until the client answers; the other sockets still get it. (The first
    fan-out of an iteration writes to each stream itself; a close frame takes the socket out
    of that path.)"""
    closing_user, other_user = await api.register(), await api.register()
    closing, client_id, counter = await open_counted(api, closing_user["access_token"])
    other, _, _ = await open_counted(api, other_user["access_token"])
    api.ctx.hub.clients[client_id].conn.close(4000, "bye")
    await wait_until(lambda: not api.ctx.hub.writes.holding, what="the iteration's flush")
    assert client_id in api.ctx.hub.clients  # the close handshake is still under way
    counter.sends.clear()
    burst(api, 0, 1)
    assert counter.sends == []
    assert [e["data"]["message"] for e in await alerts(other, 1)] == ["0"]
    while True:  # whatever came before the close frame, no alert
        opcode, payload = await asyncio.wait_for(closing.read_frame(), 5)
        if opcode == 0x8:
            break
        assert json.loads(payload)["type"] != "system.alert"
    assert int.from_bytes(payload[:2], "big") == 4000
    await closing.stream.write(bytes([0x88, 0x82, 0, 0, 0, 0]) + payload[:2])  # masked echo
    assert await asyncio.wait_for(closing.stream.read_until_close(), 5) == b""
    await wait_until(lambda: client_id not in api.ctx.hub.clients, what="unregistered")
    other.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_socket_with_bytes_queued_leaves_the_direct_path_until_they_are_written(api):
    """Lone events to a socket that stops reading: once the kernel takes only part of one,
    the rest waits on the stream and the socket leaves the direct path, so no later frame
    overtakes it; when the client reads again every event arrives whole and in order, and
    the socket is back on the direct path."""
    user = await api.register()
    raw = await RawClient.connect(api, user["access_token"], rcvbuf=4096)
    client = api.ctx.hub.clients[raw.client_id]
    await wait_until(lambda: client.sock is not None, what="on the direct path")
    pad = "q" * 3000
    sent = 0
    while client.sock is not None:  # one event per iteration, each its iteration's first
        assert sent < 400, "the kernel never stopped taking bytes"
        burst(api, sent, 1, pad)
        sent += 1
        await asyncio.sleep(0)
    queued_at = sent
    for _ in range(5):  # these go through the socket's send(), behind the queued bytes
        burst(api, sent, 1, pad)
        sent += 1
        await asyncio.sleep(0)
    assert client.sock is None
    got = await alerts(raw, sent)
    assert [e["data"]["message"] for e in got] == [str(i) for i in range(sent)]
    assert all(e["data"]["pad"] == pad for e in got)
    counter = count_sends(api, raw.client_id)
    burst(api, sent, 1)  # through send(), which finds the queue written and reopens the path
    assert client.sock is not None
    await asyncio.sleep(0)
    burst(api, sent + 1, 1)
    assert len(counter.sends) == 2
    assert [e["data"]["message"] for e in await alerts(raw, 2)] == [str(sent), str(sent + 1)]
    assert queued_at > 1 and api.ctx.hub.get_stats()["slow_consumers_dropped"] == 0
    raw.close()
