"""How a server is made to broadcast: the product's REST API or a peer's control socket."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import time
from typing import Any

__all__ = ["Trigger", "ProductTrigger", "PeerTrigger"]


class Trigger:
    """Sends one broadcast and waits for the server's acknowledgement."""

    async def open(self) -> None:
        """Opens what the trigger needs before the first send."""

    async def send(self, seq: int, pad: str = "") -> int:
        """Sends alert number seq and returns the number of recipients."""
        raise NotImplementedError

    async def burst(self, first_seq: int, count: int) -> None:
        """Makes the server publish count alerts in one IOLoop iteration (bench/burst.py)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Releases what open() acquired."""


class ProductTrigger(Trigger):
    """POST /ws/broadcast with the admin's bearer token (the product's own API)."""

    def __init__(self, base: str, admin_token: str, db_path: str = "") -> None:
        from tornado.httpclient import AsyncHTTPClient

        self.base = base
        self.db_path = db_path
        self.headers = {"Authorization": f"Bearer {admin_token}",
                        "Content-Type": "application/json"}
        self.http = AsyncHTTPClient(force_instance=True, max_clients=64)

    async def send(self, seq: int, pad: str = "") -> int:
        """Posts alert number seq to /ws/broadcast and returns its recipient count."""
        metadata: dict[str, Any] = {"pad": pad} if pad else {}
        metadata["seq"] = seq
        metadata["t"] = time.time()
        body = json.dumps({"message": "bench", "priority": "normal", "metadata": metadata},
                          separators=(",", ":"))
        resp = await self.http.fetch(self.base + "/ws/broadcast", method="POST", body=body,
                                     headers=self.headers, request_timeout=60)
        return int(json.loads(resp.body)["recipients"])

    async def burst(self, first_seq: int, count: int) -> None:
        """Commits count alert rows to the outbox; the relay's next poll publishes them at once."""
        from bench.burst import stage_alerts

        await asyncio.to_thread(stage_alerts, self.db_path, first_seq, count, 1)

    async def close(self) -> None:
        """Closes the HTTP client."""
        self.http.close()


class PeerTrigger(Trigger):
    """A control WebSocket: the peer broadcasts each text it gets there and answers "ok <n>".

    Replies come back in order, so a reader task hands each to the oldest waiting send().
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = None
        self.pending: collections.deque[asyncio.Future] = collections.deque()
        self.reader: asyncio.Task | None = None

    async def open(self) -> None:
        """Connects the control WebSocket and starts reading its replies."""
        from tornado.websocket import websocket_connect

        self.conn = await asyncio.wait_for(websocket_connect(self.url, max_message_size=1 << 20),
                                           10)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """Hands each control reply to the oldest waiting send(); fails the rest on close."""
        for _ in range(10_000_000):
            reply = await self.conn.read_message()
            if reply is None:
                break
            if self.pending:
                fut = self.pending.popleft()
                if not fut.done():
                    fut.set_result(reply)
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(RuntimeError("control connection closed"))

    async def send(self, seq: int, pad: str = "") -> int:
        """Sends alert number seq over the control socket and returns the peer's count."""
        metadata: dict[str, Any] = {"pad": pad} if pad else {}
        metadata["seq"] = seq
        metadata["t"] = time.time()
        event = {"type": "system.alert",
                 "data": {"message": "bench", "priority": "normal", "metadata": metadata,
                          "sent_by": 1},
                 "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
        fut = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        message = self.encode(event)
        await self.conn.write_message(message, binary=isinstance(message, bytes))
        reply = await asyncio.wait_for(fut, 60)
        if not isinstance(reply, str) or not reply.startswith("ok "):
            raise RuntimeError(f"unexpected control reply {reply!r}")
        return int(reply[3:])

    async def burst(self, first_seq: int, count: int) -> None:
        """Sends count alerts in one control message; the peer broadcasts them in a row."""
        from bench.burst import peer_burst_message

        fut = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        await self.conn.write_message(peer_burst_message(first_seq, count))
        reply = await asyncio.wait_for(fut, 60)
        if not isinstance(reply, str) or not reply.startswith("ok "):
            raise RuntimeError(f"unexpected control reply {reply!r}")

    def encode(self, event: dict[str, Any]) -> str | bytes:
        """Returns the alert as the peer broadcasts it: JSON text (bench/wire.py overrides)."""
        return json.dumps(event, separators=(",", ":"))

    async def close(self) -> None:
        """Closes the control socket and stops its reader."""
        if self.conn is not None:
            self.conn.close()
        if self.reader is not None:
            self.reader.cancel()
