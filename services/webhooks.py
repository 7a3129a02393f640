"""Webhooks: records the events the application asked for (--webhook-events), durably.

Where an event reports a stored change, its webhook row is written in the same transaction:
a user feed event with its outbox row (`record_feed`, called by `Relay.stage`), a room
message in the batch that stores it (`record_messages`, services/messages.py). Socket
events (connection opened or closed, presence joined or left) have no other row: they are
queued here and written behind in batches within 250 ms, like room messages. A node that is
lost with its sockets leaves their `webhook_sockets` rows behind; whichever node notices
(the presence sweep, or a restarted single node) records their `connection.closed` with the
reason `node lost`. services/webhookrelay.py delivers the rows.

Every transport calls `connection_opened(client, transport)` when a connection is set up and
`connection_closed(client, transport, code, reason)` when it goes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from tornado.ioloop import IOLoop

from hub.events import dumps, now_rfc3339
from models.db import Runner, write_tx
from models.webhook import Webhook, WebhookSocket

if TYPE_CHECKING:
    from services.outbox import Row
    from services.webhookrelay import WebhookRelay

__all__ = ["Webhooks", "Connected", "NODE_LOST", "webhook_row"]

log = logging.getLogger("webhooks")

NODE_LOST = "node lost"
FLUSH_DELAY = 0.25
MAX_BATCH = 500
MAX_PENDING = 100_000  # beyond this, while the database is down, the oldest are dropped
INSERT_CHUNK = 200


class Connected(Protocol):
    """The connection a socket event is about (hub.client.Client is one)."""

    id: str
    user_id: int


def webhook_row(type_: str, key: str, data: dict[str, Any], timestamp: str, node: str,
                event_id: str | None = None, at: float | None = None) -> dict[str, Any]:
    """Returns a `webhooks` row: the body POSTed, its order key and its times."""
    event_id = event_id or str(uuid.uuid4())
    body = dumps({"id": event_id, "type": type_, "data": data, "timestamp": timestamp,
                  "node": node})
    return {"event_id": event_id, "type": type_, "order_key": key, "body": body,
            "created_at": time.time() if at is None else at}


def insert_rows(rows: list[dict[str, Any]]) -> None:
    """Inserts webhook rows (inside the caller's transaction), skipping ids already there."""
    for start in range(0, len(rows), INSERT_CHUNK):
        Webhook.insert_many(rows[start:start + INSERT_CHUNK]).on_conflict_ignore().execute()


class Webhooks:
    """Records webhook rows; disabled (records nothing) without --webhook-url."""

    def __init__(self, run: Runner, relay: WebhookRelay | None, node_id: str,
                 events: tuple[str, ...], single_node: bool = True) -> None:
        self.run = run
        self.relay = relay
        self.node_id = node_id
        self.events = frozenset(events) if relay is not None else frozenset()
        # Open sockets are tracked (webhook_sockets) only to report their close.
        self.sockets = "connection.closed" in self.events
        # With one node (the memory broker), sockets left by an earlier process are lost.
        self.single_node = single_node
        self._pending: list[tuple[Any, ...]] = []
        self._inflight: list[tuple[Any, ...]] = []
        self._timer: object | None = None
        self._task: asyncio.Future | None = None
        self.lost = 0  # socket events dropped unsaved while the database was down

    def wants(self, type_: str) -> bool:
        """Tells whether events of this type are sent as webhooks."""
        return type_ in self.events

    def summary(self) -> dict[str, Any]:
        """Returns the queue for /ws/stats: rows waiting (the whole cluster's), the oldest
        one's age, and this node's delivery attempts by outcome since it started."""
        relay = self.relay
        if relay is None:
            return {"enabled": False}
        return {"enabled": True, "queued": relay.queued,
                "oldest_age_s": round(relay.oldest_age, 1), "delivered": relay.delivered,
                "failed": relay.failed, "dropped": relay.dropped}

    def kick(self) -> None:
        """Tells the relay that rows were just committed (it also polls every second)."""
        if self.relay is not None:
            self.relay.kick()

    # -- socket events (IOLoop) -------------------------------------------------------------

    def connection_opened(self, client: Connected, transport: str) -> None:
        """Records connection.opened (and the socket, to report its close) when wanted."""
        if self.sockets or "connection.opened" in self.events:
            self._queue(("opened", client.id, client.user_id, transport, time.time()))

    def connection_closed(self, client: Connected, transport: str, code: int | None = None,
                          reason: str | None = None) -> None:
        """Records connection.closed with the close code and reason when wanted."""
        if self.sockets:
            self._queue(("closed", client.id, client.user_id, transport, time.time(), code,
                         reason or None))

    def presence_changed(self, key: str, user_id: int, name: str, joined: bool) -> None:
        """Records presence.joined or presence.left of a channel (the hub's observer)."""
        type_ = "presence.joined" if joined else "presence.left"
        if key and type_ in self.events:
            self._queue(("presence", type_, key, user_id, name, now_rfc3339(), time.time()))

    def nodes_lost(self, nodes: list[str]) -> None:
        """Records connection.closed (`node lost`) for the sockets of nodes found dead."""
        for node in nodes:
            if self.sockets and node != self.node_id:
                self._queue(("lost", node, time.time()))

    # -- taps inside other transactions (pool threads) --------------------------------------

    def record_feed(self, rows: list[Row]) -> None:
        """Inserts the webhooks of staged feed events, in the outbox rows' transaction."""
        wanted = [webhook_row(r.type, f"user:{r.data.get('user_id')}", r.data, r.timestamp,
                              self.node_id, r.event_id) for r in rows if r.type in self.events]
        if wanted:
            insert_rows(wanted)

    def record_messages(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Inserts channel.message webhooks of (room, message) pairs, in the batch that stores
        the messages; a message's webhook id is its message id."""
        if "channel.message" in self.events and messages:
            insert_rows([webhook_row("channel.message", f"room:{room}",
                                     {"channel": f"room:{room}", **message},
                                     message["sent_at"], self.node_id, message["id"])
                         for room, message in messages])

    # -- write-behind ------------------------------------------------------------------------

    def _queue(self, entry: tuple[Any, ...]) -> None:
        self._pending.append(entry)
        if len(self._pending) > MAX_PENDING:
            dropped = len(self._pending) - MAX_PENDING
            del self._pending[:dropped]
            self.lost += dropped
            log.error("database unavailable: dropped %d unsaved socket webhooks", dropped)
        if self._timer is None and self._task is None:
            self._timer = IOLoop.current().call_later(FLUSH_DELAY, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                self._inflight = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                try:
                    await self.run(self._write, self._inflight)
                except Exception:
                    log.exception("storing %d socket webhooks failed; retrying in 1 s",
                                  len(self._inflight))
                    self._pending[:0] = self._inflight
                    self._inflight = []
                    await asyncio.sleep(1.0)
                    continue
                self._inflight = []
                self.kick()
        finally:
            self._task = None

    def _write(self, entries: list[tuple[Any, ...]]) -> None:
        """Stores one batch of socket events in order, in one transaction (blocking)."""
        rows: list[dict[str, Any]] = []
        with write_tx():
            for entry in entries:
                rows.extend(getattr(self, f"_{entry[0]}")(*entry[1:]))
            insert_rows(rows)

    def _opened(self, client_id: str, user_id: int, transport: str, at: float) -> list[dict]:
        if self.sockets:
            WebhookSocket.insert(client_id=client_id, node=self.node_id, user_id=user_id,
                                 transport=transport, opened_at=at).on_conflict_ignore().execute()
        if "connection.opened" not in self.events:
            return []
        data = {"client_id": client_id, "user_id": user_id, "transport": transport}
        return [webhook_row("connection.opened", f"user:{user_id}", data, _stamp(at),
                            self.node_id, at=at)]

    def _closed(self, client_id: str, user_id: int, transport: str, at: float,
                code: int | None, reason: str | None) -> list[dict]:
        socket = WebhookSocket.get_or_none(WebhookSocket.client_id == client_id)
        if socket is None:  # reported already (its node was thought lost)
            return []
        WebhookSocket.delete().where(WebhookSocket.client_id == client_id).execute()
        return [_closed_row(socket, at, code, reason, self.node_id)]

    def _presence(self, type_: str, channel: str, user_id: int, name: str, timestamp: str,
                  at: float) -> list[dict]:
        data = {"channel": channel, "user_id": user_id, "name": name}
        return [webhook_row(type_, channel, data, timestamp, self.node_id, at=at)]

    def _lost(self, node: str, at: float) -> list[dict]:
        sockets = list(WebhookSocket.select().where(WebhookSocket.node == node)
                       .order_by(WebhookSocket.opened_at))
        WebhookSocket.delete().where(WebhookSocket.node == node).execute()
        if sockets:
            log.warning("node %s is gone: recording connection.closed for its %d socket(s)",
                        node, len(sockets))
        return [_closed_row(s, at, None, NODE_LOST, node) for s in sockets]

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """With one node, reports the sockets an earlier process left open as lost; starts
        the relay."""
        if self.relay is None:
            return
        if self.single_node and self.sockets:
            nodes = await self.run(_other_nodes, self.node_id)
            self.nodes_lost(nodes)
        await self.relay.start(release_all=self.single_node)

    async def flush(self) -> None:
        """Writes every queued socket event now (shutdown, tests)."""
        if self._timer is not None:
            IOLoop.current().remove_timeout(self._timer)
            self._timer = None
        while self._task is not None or self._pending:
            if self._task is None:
                self._task = asyncio.ensure_future(self._flush())
            await self._task

    async def close(self) -> None:
        """Writes what is queued, then stops the relay."""
        await self.flush()
        if self.relay is not None:
            await self.relay.close()


def _stamp(at: float) -> str:
    """Returns Unix time `at` in RFC 3339 UTC with milliseconds, as events carry it."""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _closed_row(socket: WebhookSocket, at: float, code: int | None, reason: str | None,
                node: str) -> dict[str, Any]:
    data: dict[str, Any] = {"client_id": socket.client_id, "user_id": socket.user_id,
                            "transport": socket.transport}
    if code is not None:
        data["code"] = code
    if reason:
        data["reason"] = reason
    data["duration_s"] = round(max(0.0, at - socket.opened_at), 3)
    return webhook_row("connection.closed", f"user:{socket.user_id}", data, _stamp(at),
                       node, at=at)


def _other_nodes(node_id: str) -> list[str]:
    """Returns the nodes other than this one with sockets still recorded open (blocking)."""
    query = (WebhookSocket.select(WebhookSocket.node).where(WebhookSocket.node != node_id)
             .distinct())
    return [s.node for s in query]
