"""The rooms benchmark's client side: the Socket.IO codec, the room clients of the load
generator (against a real python-socketio peer), its targets and section. No timing
assertions."""

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

from bench.loadgen.client import Stats
from bench.loadgen.rooms import SIO_PATH, RoomClient, client_frame, sio_event, sio_parse
from bench.report import render_sections
from bench.report.targets import room_targets

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
    assert sio_event("join", "r1") == b'42["join","r1"]'
    assert sio_parse(b'0{"sid":"x","pingInterval":25000}') == ("open", {"sid": "x",
                                                                          "pingInterval": 25000})
    assert sio_parse(b"2") == ("ping", b"")
    assert sio_parse(b'40{"sid":"y"}') == ("connect", {"sid": "y"})
    assert sio_parse(b'42["msg",{"t":1.5}]') == ("event", ("msg", {"t": 1.5}))
    assert sio_parse(b'42/chat,["msg",1]') == ("event", ("msg", 1))
    assert sio_parse(b'44{"message":"no"}')[0] == "connect_error"
    assert sio_parse(b"") == ("unknown", None)
    frame = client_frame(b"3")
    assert frame == b"\x81\x81\x00\x00\x00\x003"  # FIN + text, masked with a zero key
    long = client_frame(b"x" * 300)
    assert long[:4] == b"\x81\xfe\x01\x2c" and long[8:] == b"x" * 300


def test_room_client_speaks_socketio_handshake_ping_and_publish() -> None:
    loop = asyncio.new_event_loop()
    try:
        stats = Stats()
        ready = loop.create_future()
        client = RoomClient(stats, b"GET / HTTP/1.1\r\n\r\n", ready, "sio", "r7")
        transport = FakeTransport()
        client.connection_made(transport)
        client.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
                             + _frame(b'0{"sid":"a","pingInterval":300000}'))
        assert transport.written[-1] == client_frame(b"40")
        client.data_received(_frame(b'40{"sid":"b"}'))
        assert transport.written[-1] == client_frame(b'42["join","r7"]')
        assert not ready.done()
        client.data_received(_frame(b'42["joined","r7"]') + _frame(b"2"))
        assert ready.done() and client.joined
        assert transport.written[-1] == client_frame(b"3")  # pong
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
        client = RoomClient(stats, b"GET / HTTP/1.1\r\n\r\n", ready, "json", "r1")
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
        other = RoomClient(Stats(), b"", refused, "json", "secret")
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
    request = (f"GET {SIO_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    ready = loop.create_future()
    client = RoomClient(stats, request, ready, "sio", room)
    await loop.create_connection(lambda: client, "127.0.0.1", port)
    await asyncio.wait_for(ready, 10)
    return client


def _need(module: str) -> None:
    """Skips without the module, except in CI (CI=true), where it must be installed."""
    if os.environ.get("CI") == "true":
        __import__(module)
    else:
        pytest.importorskip(module)


def test_room_clients_against_the_python_socketio_peer() -> None:
    _need("socketio")
    _need("aiohttp")
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


def _r1(cpu: float, p99: float) -> dict:
    lat = {"count": 10, "mean_ms": p99 / 2, "p50_ms": p99 / 4, "p90_ms": p99 / 2,
           "p99_ms": p99, "p999_ms": p99, "max_ms": p99 * 1.5}
    return {"rooms": 200, "members_per_room": 50.0, "published": 4000,
            "publishes_per_room": 20.0, "publish_rate": 200.0, "delivered": 200000,
            "expected": 200000, "msgs_per_s": 10000.0, "cpu_us_per_msg": cpu,
            "cpu_us_per_publish": cpu * 50, "latency": lat, "server_core_util": 0.3,
            "client_core_util": 0.2, "latency_quantiles": [[0.0, 1.0], [1.0, p99]]}


def rooms_results() -> dict:
    r2 = {"few": {"sends": 300, "loop_cpu_us_per_publish": 200.0, "cpu_us_per_publish": 400.0,
                  "messages_at_tabs": [305, 305, 305]},
          "many": {"sends": 300, "loop_cpu_us_per_publish": 210.0, "cpu_us_per_publish": 420.0,
                   "messages_at_tabs": [305, 305, 305]},
          "ratio": 1.05, "ratio_process": 1.05, "bystanders_few": 10, "bystanders_many": 10000}
    return {
        "schema": 1, "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:05:00Z",
        "mode": "quick", "duration_s": 60.0, "note": "Shared machine.",
        "config": {"connections": 2000, "rooms": 200, "members": 50, "users": 1000,
                   "room_rate": 200.0, "room_seconds": 20.0, "iso_sends": 300, "iso_few": 10},
        "machine": {"cpu": "Test CPU", "python_socketio": "5.18.1", "aiohttp": "3.14.5",
                    "node_socketio": "4.8.4"},
        "servers": {},
        "rooms": {
            "product": {"workloads": {"R1connect": {"connections": 10000},
                                      "R1": _r1(20.0, 150.0), "R2": r2}, "notes": []},
            "socketio": {"workloads": {"R1": _r1(40.0, 120.0)}, "notes": []},
            "socketio-node": {"workloads": {"R1": _r1(15.0, 90.0)}, "notes": []},
        },
        "targets": [],
    }


def test_room_targets_compare_with_both_peers() -> None:
    targets = {t["id"]: t for t in room_targets(rooms_results())}
    assert targets["rooms_cpu_vs_socketio"]["value"] == pytest.approx(0.5)
    assert targets["rooms_cpu_vs_socketio"]["met"] is True
    assert targets["rooms_cpu_vs_socketio_node"]["value"] == pytest.approx(20.0 / 15.0)
    assert targets["rooms_cpu_vs_socketio_node"]["met"] is False
    assert targets["rooms_p99"]["met"] is True
    assert targets["rooms_isolation"]["value"] == pytest.approx(1.05)
    assert targets["rooms_isolation"]["met"] is True
    assert room_targets({"servers": {}}) == []


def test_rooms_section_has_peers_summary_targets_and_details() -> None:
    results = {**rooms_results(), "kind": "run"}
    sections = render_sections(results, "run-x.json")
    assert list(sections) == ["rooms"]
    md = sections["rooms"]
    assert "**Conditions.** Shared machine." in md
    assert ("| this server (Tornado + hub) | 10,000 | - | 200 x 50.0 | 4,000 (200/s) | "
            "200,000/200,000 | 1,000 | 10,000 | 20.00 |") in md
    assert "python-socketio (aiohttp)" in md and "Node socket.io" in md
    assert "### R2 room isolation" in md and "305, 305, 305" in md
    assert "python-socketio 5.18.1 on aiohttp 3.14.5" in md
    assert "R1 CPU per room delivery vs Node socket.io | 1.33 | <= 1.00 | **MISSED**" in md
