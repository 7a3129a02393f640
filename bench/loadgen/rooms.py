"""Room clients of the load generator: each joins one room, publishes into it on command and
times what arrives, speaking this server's verbs ("json") or Socket.IO ("sio": a minimal
Engine.IO v4 / Socket.IO v5 codec; the peers answer a "join" event with "joined")."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import time
from typing import Any

from bench.loadgen.client import Client, Stats

__all__ = ["SIO_PATH", "client_frame", "sio_event", "sio_parse", "RoomClient", "handle_rooms"]

SIO_PATH = "/socket.io/?EIO=4&transport=websocket"
# Engine.IO packet types, and Socket.IO's inside an Engine.IO message ("4").
_KINDS = {b"0": "open", b"1": "close", b"2": "ping", b"3": "pong", b"40": "connect",
          b"41": "disconnect", b"42": "event", b"44": "connect_error"}


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """Returns one masked WebSocket frame (FIN set, zero key: the payload goes as is)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


def sio_event(name: str, data: Any) -> bytes:
    """Returns the Engine.IO message packet of a Socket.IO event in the default namespace."""
    return b"42" + json.dumps([name, data], separators=(",", ":")).encode()


def sio_parse(packet: bytes) -> tuple[str, Any]:
    """Returns (kind, value) of one Engine.IO packet; an event's is (name, data)."""
    kind = _KINDS.get(packet[:2]) or _KINDS.get(packet[:1], "unknown")
    if kind in ("open", "connect", "connect_error"):
        body = packet[1 if kind == "open" else 2:]
        return kind, json.loads(body) if body else {}
    if kind in ("ping", "pong"):
        return kind, packet[1:]
    if kind == "event":
        start = packet.find(b"[")  # skips a namespace ("/x,") and an ack id, if any
        args = json.loads(packet[start:]) if start >= 0 else []
        return kind, (args[0] if args else "", args[1] if len(args) > 1 else None)
    return kind, (packet or None) if kind == "unknown" else None


class RoomClient(Client):
    """A WebSocket client that joins one room and publishes into it."""

    __slots__ = ("proto", "room", "joined")

    def __init__(self, stats: Stats, request: bytes, ready: asyncio.Future, proto: str,
                 room: str) -> None:
        super().__init__(stats, request, ready)
        self.proto, self.room, self.joined = proto, room, False

    def send_text(self, payload: bytes) -> None:
        """Sends one masked text frame."""
        if self.open and self.transport is not None:
            self.transport.write(client_frame(payload))

    def on_upgraded(self) -> None:
        """Subscribes at once (json); a Socket.IO client first waits for the open packet."""
        if self.proto == "json":
            self.send_text(json.dumps({"id": 1, "type": "subscribe",
                                       "data": {"channel": f"room:{self.room}"}}).encode())

    def _joined(self) -> None:
        """Marks the client as in its room and ready (as a plain client is once upgraded)."""
        self.joined = True
        Client.on_upgraded(self)

    def on_text(self, buf: bytes, start: int, end: int) -> None:
        """Handles a frame without a send timestamp: join replies, errors, pings."""
        if self.proto != "sio":
            super().on_text(buf, start, end)
            if not self.joined:
                if buf.find(b'"type":"reply"', start, end) >= 0:
                    self._joined()
                elif buf.find(b'"type":"error"', start, end) >= 0:
                    self.fail(buf[start:end].decode("utf-8", "replace"))
            return
        kind, value = sio_parse(buf[start:end])
        self.stats.by_type[f"sio.{kind}"] = self.stats.by_type.get(f"sio.{kind}", 0) + 1
        if kind == "ping":
            self.send_text(b"3")
        elif kind == "open":
            self.send_text(b"40")
        elif kind == "connect":
            self.send_text(sio_event("join", self.room))
        elif kind == "event" and value[0] == "joined":
            self._joined()
        elif kind in ("connect_error", "disconnect", "close"):
            self.fail(f"socket.io {kind}: {value}")

    def publish(self, seq: int) -> None:
        """Publishes one message carrying its send time into this client's room."""
        t = time.time()
        if self.proto == "sio":
            self.send_text(sio_event("publish", {"room": self.room, "t": t, "seq": seq}))
        else:
            self.send_text(json.dumps({"type": "publish", "data": {
                "channel": f"room:{self.room}", "data": {"t": t, "seq": seq}}},
                separators=(",", ":")).encode())


async def handle_rooms(worker: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    """Runs rooms_members or rooms_publish (rate per second, random members)."""
    clients = [c for c in worker.clients if isinstance(c, RoomClient) and c.open and c.joined]
    if cmd["cmd"] == "rooms_members":
        return {"members": dict(collections.Counter(c.room for c in clients))}
    rate, seconds = float(cmd["rate"]), float(cmd["seconds"])
    rng = random.Random(int(cmd.get("seed", 0)) ^ os.getpid())
    by_room: dict[str, int] = {}
    sent, began = 0, time.monotonic()
    for k in range(int(rate * seconds) if clients else 0):
        await asyncio.sleep(max(0.0, began + k / rate - time.monotonic()))
        if time.monotonic() > worker.deadline:
            break
        client = rng.choice(clients)
        if client.open:
            client.publish(sent)
            by_room[client.room] = by_room.get(client.room, 0) + 1
            sent += 1
    return {"published": sent, "by_room": by_room, "elapsed": time.monotonic() - began}
