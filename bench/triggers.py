"""How a server is made to publish: the product's REST API (or its outbox, for a burst) or a
peer's control socket, with alerts shaped like the product's `system.alert`."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import time
import uuid
from typing import Any

__all__ = ["alert_data", "burst_message", "stage_alerts", "ProductTrigger", "PeerTrigger"]


def alert_data(seq: int, pad: str = "", timed: bool = True) -> dict[str, Any]:
    """Returns alert seq's data, with its send time "t" unless untimed."""
    metadata: dict[str, Any] = {"pad": pad} if pad else {}
    metadata.update({"seq": seq, "t": time.time()} if timed else {"seq": seq})
    return {"message": "bench", "priority": "normal", "metadata": metadata, "sent_by": 1}


def _event(data: dict[str, Any]) -> dict[str, Any]:
    """Returns the system.alert event carrying data, stamped now."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {"type": "system.alert", "data": data, "timestamp": stamp}


def burst_message(first_seq: int, count: int) -> str:
    """Returns the control message that makes a peer broadcast count alerts in a row."""
    return json.dumps([json.dumps(_event(alert_data(first_seq + i)), separators=(",", ":"))
                       for i in range(count)])


def stage_alerts(db_path: str, first_seq: int, count: int) -> None:
    """Commits count alert rows to the product's outbox (blocking)."""
    from hub.codec import encode_targets
    from hub.events import dumps, now_rfc3339
    from hub.messages import ALL, FEED
    from models.db import db, init_db
    from models.outbox import OutboxEvent

    database = init_db("sqlite:///" + db_path)
    rows = [{"event_id": str(uuid.uuid4()), "stream": FEED, "type": "system.alert",
             "data": dumps(alert_data(first_seq + i)), "targets": encode_targets(ALL),
             "timestamp": now_rfc3339()} for i in range(count)]
    with db.connection_context(), db.atomic():
        OutboxEvent.insert_many(rows).execute()
    database.close()


class ProductTrigger:
    """POST /ws/broadcast with the admin's bearer token (the product's own API)."""

    def __init__(self, base: str, admin_token: str, db_path: str = "", timed: bool = True,
                 timeout: float = 60.0) -> None:
        from tornado.httpclient import AsyncHTTPClient

        self.url, self.db_path = f"{base}/ws/broadcast", db_path
        self.timed, self.timeout = timed, timeout
        self.headers = {"Authorization": f"Bearer {admin_token}",
                        "Content-Type": "application/json"}
        self.http = AsyncHTTPClient(force_instance=True, max_clients=64)

    async def send(self, seq: int, pad: str = "") -> int:
        """Posts alert number seq and returns its recipient count."""
        data = alert_data(seq, pad, self.timed)
        body = json.dumps({k: data[k] for k in ("message", "priority", "metadata")})
        resp = await self.http.fetch(self.url, method="POST", body=body, headers=self.headers,
                                     connect_timeout=min(20.0, self.timeout / 5),
                                     request_timeout=self.timeout)
        return int(json.loads(resp.body)["recipients"])

    async def burst(self, first_seq: int, count: int) -> None:
        """Commits count alert rows to the outbox; the relay's next poll publishes them at once."""
        await asyncio.to_thread(stage_alerts, self.db_path, first_seq, count)

    async def close(self) -> None:
        """Closes the HTTP client."""
        self.http.close()


class PeerTrigger:
    """A peer's control WebSocket: each message is broadcast and answered "ok <n>", in order."""

    def __init__(self, url: str) -> None:
        self.url, self.conn, self.reader, self.protobuf = url, None, None, False
        self.pending: collections.deque[asyncio.Future] = collections.deque()

    async def open(self) -> None:
        """Connects the control WebSocket and starts reading its replies."""
        from tornado.websocket import websocket_connect

        self.conn = await asyncio.wait_for(websocket_connect(self.url, max_message_size=1 << 20),
                                           10)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """Hands each control reply to the oldest waiting request; fails the rest on close."""
        while (reply := await self.conn.read_message()) is not None:
            if self.pending and not (fut := self.pending.popleft()).done():
                fut.set_result(reply)
        for fut in self.pending:
            if not fut.done():
                fut.set_exception(RuntimeError("control connection closed"))

    async def _request(self, message: str | bytes) -> int:
        """Sends one control message and returns the count in the peer's "ok <n>"."""
        fut = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        await self.conn.write_message(message, binary=isinstance(message, bytes))
        reply = await asyncio.wait_for(fut, 60)
        if not isinstance(reply, str) or not reply.startswith("ok "):
            raise RuntimeError(f"unexpected control reply {reply!r}")
        return int(reply[3:])

    async def send(self, seq: int, pad: str = "") -> int:
        """Sends alert number seq over the control socket and returns the peer's count."""
        event = _event(alert_data(seq, pad))
        if not self.protobuf:
            return await self._request(json.dumps(event, separators=(",", ":")))
        from hub.events import Event

        return await self._request(Event(event["type"], event["data"], event["timestamp"])
                                   .encode().protobuf)

    async def burst(self, first_seq: int, count: int) -> None:
        """Sends count alerts in one control message; the peer broadcasts them in a row."""
        await self._request(burst_message(first_seq, count))

    async def close(self) -> None:
        """Closes the control socket and stops its reader."""
        if self.conn is not None:
            self.conn.close()
        if self.reader is not None:
            self.reader.cancel()
