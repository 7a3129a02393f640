"""Room clients of the load generator: each joins one room, publishes into it on command and
times what arrives.

Two protocols over the raw WebSocket client of bench/loadgen.py: "json", this server's verbs
(`subscribe` with an id, then `publish`; messages arrive as `channel.message`), and "sio", the
Socket.IO peers' (bench/sio.py: connect, a "join" event answered by "joined", "publish"
events; messages arrive as "msg"). Every published body carries "t", the send time, which the
loadgen Client turns into a latency at each receiver without decoding the JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any

from bench import sio
from bench.loadgen import Client

__all__ = ["RoomClient", "rooms_publish", "rooms_members"]


class RoomClient(Client):
    """A WebSocket client that joins one room and publishes into it."""

    __slots__ = ("proto", "room", "joined")

    def __init__(self, stats: Any, request: bytes, ready: asyncio.Future, tag: str,
                 proto: str, room: str) -> None:
        super().__init__(stats, request, ready, tag)
        self.proto = proto
        self.room = room
        self.joined = False

    def send_text(self, payload: bytes) -> None:
        """Sends one masked text frame."""
        if self.open and self.transport is not None:
            self.transport.write(sio.client_frame(payload))

    def on_upgraded(self) -> None:
        """Subscribes at once (json); a Socket.IO client first waits for the open packet."""
        if self.proto == "json":
            self.send_text(json.dumps({"id": 1, "type": "subscribe",
                                       "data": {"channel": f"room:{self.room}"}}).encode())

    def _joined(self) -> None:
        """Marks the client as in its room and ready."""
        self.joined = True
        if not self.ready.done():
            self.ready.set_result(time.time())

    def _fail(self, why: str) -> None:
        """Fails the connect (if still pending) and closes the connection."""
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why[:100]))
        if self.transport is not None:
            self.transport.close()

    def on_text(self, buf: bytes, start: int, end: int) -> None:
        """Handles a frame without a send timestamp: join replies, errors, pings."""
        if self.proto != "sio":
            super().on_text(buf, start, end)
            if not self.joined:
                if buf.find(b'"type":"reply"', start, end) >= 0:
                    self._joined()
                elif buf.find(b'"type":"error"', start, end) >= 0:
                    self._fail(buf[start:end].decode("utf-8", "replace"))
            return
        kind, value = sio.parse(buf[start:end])
        by_type = self.stats.by_type
        by_type[f"sio.{kind}"] = by_type.get(f"sio.{kind}", 0) + 1
        if kind == "ping":
            self.send_text(sio.PONG)
        elif kind == "open":
            self.send_text(sio.CONNECT)
        elif kind == "connect":
            self.send_text(sio.event("join", self.room))
        elif kind == "event" and value[0] == "joined":
            self._joined()
        elif kind in ("connect_error", "disconnect", "close"):
            self._fail(f"socket.io {kind}: {value}")

    def publish(self, seq: int) -> None:
        """Publishes one message carrying its send time into this client's room."""
        t = time.time()
        if self.proto == "sio":
            self.send_text(sio.event("publish", {"room": self.room, "t": t, "seq": seq}))
        else:
            self.send_text(json.dumps({"type": "publish", "data": {
                "channel": f"room:{self.room}", "data": {"t": t, "seq": seq}}},
                separators=(",", ":")).encode())


def _joined_clients(worker: Any) -> list[RoomClient]:
    """Returns the worker's open room clients that are in their room."""
    return [c for c in worker.clients if isinstance(c, RoomClient) and c.open and c.joined]


async def rooms_publish(worker: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    """Publishes at cmd["rate"] per second for cmd["seconds"], each from a random joined
    client of this process (evenly spaced, no drift); returns the count per room."""
    rate, seconds = float(cmd["rate"]), float(cmd["seconds"])
    clients = _joined_clients(worker)
    rng = random.Random(int(cmd.get("seed", 0)) ^ os.getpid())
    by_room: dict[str, int] = {}
    sent = 0
    began = time.monotonic()
    total = int(rate * seconds) if clients else 0
    for k in range(total):
        delay = began + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() > worker.deadline:
            break
        client = rng.choice(clients)
        if not client.open:
            continue
        client.publish(sent)
        by_room[client.room] = by_room.get(client.room, 0) + 1
        sent += 1
    return {"published": sent, "by_room": by_room, "elapsed": time.monotonic() - began}


def rooms_members(worker: Any) -> dict[str, Any]:
    """Returns the joined, open clients of this process per room."""
    members: dict[str, int] = {}
    for c in _joined_clients(worker):
        members[c.room] = members.get(c.room, 0) + 1
    return {"members": members}
