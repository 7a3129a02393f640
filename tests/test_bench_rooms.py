"""The rooms benchmark's client side: the Socket.IO codec, the room clients of the load
generator (against a real python-socketio peer) and the rooms report. No timing assertions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from bench import sio
from bench.loadgen import Stats
from bench.roomclient import RoomClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def _frame(payload: bytes) -> bytes:
    return bytes([0x81, len(payload)]) + payload


def _payload(frame: bytes) -> bytes:
    """Returns the payload of one masked client frame (zero key)."""
    size = frame[1] & 0x7F
    return frame[8:] if size == 126 else frame[6:]


def test_sio_codec_round_trip() -> None:
    assert sio.event("join", "r1") == b'42["join","r1"]'
    assert sio.parse(b'0{"sid":"x","pingInterval":25000}') == ("open", {"sid": "x",
                                                                          "pingInterval": 25000})
    assert sio.parse(b"2") == ("ping", b"")
    assert sio.parse(b'40{"sid":"y"}') == ("connect", {"sid": "y"})
    assert sio.parse(b'42["msg",{"t":1.5}]') == ("event", ("msg", {"t": 1.5}))
    assert sio.parse(b'42/chat,["msg",1]') == ("event", ("msg", 1))
    assert sio.parse(b'44{"message":"no"}')[0] == "connect_error"
    assert sio.parse(b"") == ("unknown", None)
    frame = sio.client_frame(b"3")
    assert frame == b"\x81\x81\x00\x00\x00\x003"  # FIN + text, masked with a zero key
    long = sio.client_frame(b"x" * 300)
    assert long[:4] == b"\x81\xfe\x01\x2c" and long[8:] == b"x" * 300


def test_room_client_speaks_socketio_handshake_ping_and_publish() -> None:
    loop = asyncio.new_event_loop()
    try:
        stats = Stats()
        ready = loop.create_future()
        client = RoomClient(stats, b"GET / HTTP/1.1\r\n\r\n", ready, "", "sio", "r7")
        transport = FakeTransport()
        client.connection_made(transport)
        client.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
                             + _frame(b'0{"sid":"a","pingInterval":300000}'))
        assert transport.written[-1] == sio.client_frame(b"40")
        client.data_received(_frame(b'40{"sid":"b"}'))
        assert transport.written[-1] == sio.client_frame(b'42["join","r7"]')
        assert not ready.done()
        client.data_received(_frame(b'42["joined","r7"]') + _frame(b"2"))
        assert ready.done() and client.joined
        assert transport.written[-1] == sio.client_frame(b"3")  # pong
        client.publish(5)
        sent = _payload(transport.written[-1])
        assert sent.startswith(b'42["publish",{"room":"r7","t":') and b'"seq":5}' in sent
        client.data_received(_frame(b'42["msg",{"room":"r7","t": ' + str(time.time()).encode()
                                    + b',"seq":5}]'))
        assert stats.received == 1 and len(stats.latencies) == 1
    finally:
        loop.close()


def test_room_client_speaks_this_servers_verbs() -> None:
    loop = asyncio.new_event_loop()
    try:
        stats = Stats()
        ready = loop.create_future()
        client = RoomClient(stats, b"GET / HTTP/1.1\r\n\r\n", ready, "", "json", "r1")
        transport = FakeTransport()
        client.connection_made(transport)
        client.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
                             + _frame(b'{"type":"connection.established","data":{}}'))
        sub = json.loads(_payload(transport.written[-1]))
        assert sub == {"id": 1, "type": "subscribe", "data": {"channel": "room:r1"}}
        client.data_received(_frame(b'{"type":"reply","id":1,"data":{"subscribed":true}}'))
        assert ready.done() and client.joined
        client.publish(3)
        pub = json.loads(_payload(transport.written[-1]))
        assert pub["type"] == "publish" and pub["data"]["channel"] == "room:r1"
        assert pub["data"]["data"]["seq"] == 3
        refused = loop.create_future()
        other = RoomClient(Stats(), b"", refused, "", "json", "secret")
        other.connection_made(FakeTransport())
        other.data_received(b"HTTP/1.1 101 OK\r\n\r\n" + _frame(
            b'{"type":"error","id":1,"data":{"code":"forbidden"}}'))
        assert isinstance(refused.exception(), ConnectionError)
    finally:
        loop.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _open(port: int, room: str, stats: Stats) -> RoomClient:
    loop = asyncio.get_running_loop()
    request = (f"GET {sio.PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    ready = loop.create_future()
    client = RoomClient(stats, request, ready, "", "sio", room)
    await loop.create_connection(lambda: client, "127.0.0.1", port)
    await asyncio.wait_for(ready, 10)
    return client


def test_room_clients_against_the_python_socketio_peer() -> None:
    pytest.importorskip("socketio")
    pytest.importorskip("aiohttp")
    port = _free_port()
    peer = subprocess.Popen([sys.executable, "bench/peers/socketio_server.py", "--port",
                             str(port), "--ping-interval", "0.3", "--ping-timeout", "5",
                             "--max-seconds", "30"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def scenario() -> tuple[Stats, Stats]:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            await asyncio.sleep(0.1)
        in_a, in_b = Stats(), Stats()
        a1, a2 = await _open(port, "a", in_a), await _open(port, "a", in_a)
        b1 = await _open(port, "b", in_b)
        await asyncio.sleep(0.5)  # the peer pings every 0.3 s: the clients must answer
        a1.publish(1)
        for _ in range(100):
            if in_a.received >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        assert a1.open and a2.open and b1.open
        for c in (a1, a2, b1):
            c.transport.close()
        return in_a, in_b

    try:
        in_a, in_b = asyncio.run(scenario())
    finally:
        peer.terminate()
        _, err = peer.communicate(timeout=10)
    assert in_a.received == 2 and len(in_a.latencies) == 2  # the sender gets it too
    assert in_b.received == 0  # the other room gets nothing
    assert in_a.by_type.get("sio.ping", 0) >= 2, err.decode()[-500:]
