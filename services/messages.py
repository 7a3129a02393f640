"""Room messages: publishing, write-behind persistence in batches, history and retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import logging
import time
from typing import Any, Protocol

import peewee
from tornado.ioloop import IOLoop, PeriodicCallback

from hub.events import dumps
from models.db import Runner, db, write_tx
from models.room import RoomMessage
from services import validation as v
from services.errors import ValidationError
from services.notifier import Notifier

__all__ = ["MessageService", "MessageIds", "MAX_BODY_BYTES", "before_cursor"]

log = logging.getLogger("messages")

MESSAGE_ID_MAX = 32  # characters of RoomMessage.id (24 hex digits today)

MAX_BODY_BYTES = 16 * 1024
# Seconds a message may wait before its batch is written. Each write is a hop to the pool
# and a transaction (a WAL commit on SQLite); a quarter second makes one write carry a busy
# room's burst instead of a message or two, and costs readers nothing: history merges the
# messages not yet written.
FLUSH_DELAY = 0.25
MAX_BATCH = 500
MAX_PENDING = 100_000  # beyond this, while the database is down, the oldest are dropped
PURGE_INTERVAL_MS = 3600 * 1000


class MessageIds:
    """Makes message ids: fixed-width hex, ordered by time, unique per node."""

    def __init__(self, node_id: str) -> None:
        self._node = int(node_id[:6], 16) if _is_hex(node_id[:6]) else hash(node_id)
        self._node &= 0xFFFFFF
        self._last_ms = 0
        self._seq = itertools.count()

    def next(self) -> tuple[str, dt.datetime]:
        """Returns a new id and the time it stands for."""
        ms = max(int(time.time() * 1000), self._last_ms)
        if ms != self._last_ms:
            self._last_ms, self._seq = ms, itertools.count()
        seq = next(self._seq)
        when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(tzinfo=None)
        return f"{ms:012x}{self._node:06x}{seq:06x}", when


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text)


def before_cursor(value: str | None) -> str | None:
    """Returns a history page's `before` (a message id, as `next_before` gives it) or None when
    absent; anything else is refused rather than read as an empty page."""
    if not value:
        return None
    if len(value) > MESSAGE_ID_MAX or not _is_hex(value):
        raise v.invalid("before", "must be a message id (the next_before of the previous page)")
    return value


def check_body(body: Any) -> str:
    """Returns the body as JSON text if it is an object of at most 16 KiB, else raises."""
    if not isinstance(body, dict):
        raise ValidationError("data must be a JSON object")
    text = dumps(body)
    if len(text.encode("utf-8")) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"a message body may be at most {MAX_BODY_BYTES // 1024} KiB of JSON")
    return text


class BodyTooLarge(ValidationError):
    """A published body is over the size limit."""

    code = "too_large"


class MessageWebhooks(Protocol):
    """Records channel.message webhooks with the batch (services/webhooks.py Webhooks)."""

    def record_messages(self, messages: list[tuple[str, dict[str, Any]]]) -> None: ...

    def kick(self) -> None: ...


class MessageService:
    """Publishes room messages at once and stores them behind the fan-out, in batches."""

    def __init__(self, run: Runner, notifier: Notifier, node_id: str,
                 retention_days: int) -> None:
        self.run = run
        self.notifier = notifier
        self.ids = MessageIds(node_id)
        self.retention_days = retention_days
        self._pending: list[dict[str, Any]] = []
        self._inflight: list[dict[str, Any]] = []
        self._timer: object | None = None
        self._task: asyncio.Future | None = None
        self._purge: PeriodicCallback | None = None
        # Messages delivered but dropped unsaved: a restart must not claim their rooms clean.
        self.lost = 0
        # Set when the application wants channel.message webhooks (app.py): each batch
        # records them in its own transaction.
        self.webhooks: MessageWebhooks | None = None

    async def publish(self, room: str, sender_id: int | None, sender_name: str, body: Any, *,
                      api_key: str | None = None,
                      message_id: tuple[str, dt.datetime] | None = None) -> dict[str, Any]:
        """Delivers a message to the room's subscribers now; stores it shortly after.

        A message from the server API has no sender user: `from` names its API key.
        """
        text = check_body(body)
        message_id, when = message_id or self.ids.next()
        sent_at = when.isoformat(timespec="milliseconds") + "Z"
        sender: dict[str, Any] = ({"api_key": api_key} if api_key is not None
                                  else {"user_id": sender_id, "name": sender_name})
        data = {"id": message_id, "from": sender, "body": body, "sent_at": sent_at}
        offset = await self.notifier.channel_message(f"room:{room}", data)
        self._queue({"id": message_id, "room": room, "sender": sender_id,
                     "sender_name": sender_name, "body": text, "created_at": when,
                     "offset": int(offset) if offset else None, "api_key": api_key})
        return {"id": message_id, "sent_at": sent_at, "offset": offset}

    async def history(self, room: str, before: str | None, limit: int,
                      recent: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        """Returns up to limit messages of a room older than `before`, newest first.

        `recent` (the recovery log's, with offsets) come first; the database fills the rest.
        """
        if len(recent) >= limit:
            return list(recent)[:limit]

        def query() -> list[dict[str, Any]]:
            rows = RoomMessage.select().where(RoomMessage.room == room)
            if before:
                rows = rows.where(RoomMessage.id < before)
            return [m.to_public() for m in rows.order_by(RoomMessage.id.desc()).limit(limit)]

        stored = await self.run(query)
        unsaved = [_public(r) for r in (*self._inflight, *self._pending)
                   if r["room"] == room and (not before or r["id"] < before)]
        merged = {m["id"]: m for m in (*stored, *unsaved, *recent)}
        return sorted(merged.values(), key=lambda m: m["id"], reverse=True)[:limit]

    async def after(self, room: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Returns up to limit messages of a room with an offset above `offset`, oldest first
        (stored ones, then those still waiting to be written)."""
        def query() -> list[dict[str, Any]]:
            rows = (RoomMessage.select().where((RoomMessage.room == room)
                                               & (RoomMessage.offset > offset))
                    .order_by(RoomMessage.offset).limit(limit))
            return [m.to_public() for m in rows]

        stored = await self.run(query)
        unsaved = [_public(r) for r in (*self._inflight, *self._pending)
                   if r["room"] == room and r.get("offset") and r["offset"] > offset]
        merged = {m["id"]: m for m in (*stored, *unsaved)}
        return sorted(merged.values(), key=lambda m: int(m["offset"]))[:limit]

    # -- write-behind --------------------------------------------------------------------

    def _queue(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) > MAX_PENDING:
            dropped = len(self._pending) - MAX_PENDING
            del self._pending[:dropped]
            self.lost += dropped  # their rooms' history can no longer be restored exactly
            log.error("database unavailable: dropped %d unsaved room messages", dropped)
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
                    await self.run(_insert, self._inflight, self.webhooks)
                except Exception:
                    log.exception("storing %d room messages failed; retrying in 1 s",
                                  len(self._inflight))
                    self._pending[:0] = self._inflight
                    self._inflight = []
                    await asyncio.sleep(1.0)
                    continue
                self._inflight = []
                if self.webhooks is not None:
                    self.webhooks.kick()
        finally:
            self._task = None

    async def flush(self) -> None:
        """Writes every pending message now (shutdown, tests)."""
        if self._timer is not None:
            IOLoop.current().remove_timeout(self._timer)
            self._timer = None
        while self._task is not None or self._pending:
            if self._task is None:
                self._task = asyncio.ensure_future(self._flush())
            await self._task

    # -- retention -----------------------------------------------------------------------

    def start(self) -> None:
        """Purges messages past the retention now and every hour."""
        self._purge = PeriodicCallback(self._purge_old, PURGE_INTERVAL_MS)
        self._purge.start()
        IOLoop.current().add_callback(self._purge_old)

    async def _purge_old(self) -> int:
        cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(
            days=self.retention_days)
        try:
            return await self.run(
                lambda: RoomMessage.delete().where(RoomMessage.created_at < cutoff).execute())
        except Exception:
            log.exception("purging old room messages failed")
            return 0

    async def close(self) -> None:
        """Stops purging and writes what is pending."""
        if self._purge is not None:
            self._purge.stop()
        await self.flush()


def _public(row: dict[str, Any]) -> dict[str, Any]:
    sender = ({"api_key": row["api_key"]} if row.get("api_key") is not None
              else {"user_id": row["sender"], "name": row["sender_name"]})
    return {"id": row["id"], "from": sender,
            "body": json.loads(row["body"]),
            "sent_at": row["created_at"].isoformat(timespec="milliseconds") + "Z",
            "offset": str(row["offset"]) if row.get("offset") else None}


_INSERT_COLUMNS = ('"id", "room", "sender_id", "sender_name", "body", "created_at", '
                   '"stream_offset", "api_key"')


def _insert(rows: list[dict[str, Any]], webhooks: MessageWebhooks | None = None) -> int:
    """Inserts a batch, leaving out rows of rooms deleted since they were published (and
    unlinking senders deleted meanwhile, who keep their name), with their webhooks.

    Plain DB-API statements: building the same queries with the ORM cost more CPU than the
    statements themselves (and held the GIL the IOLoop needs).
    """
    database = db.obj
    with write_tx():
        alive = _existing(database, "rooms", "name", {r["room"] for r in rows})
        users = _existing(database, "users", "id", {r["sender"] for r in rows})
        keep = [(r["id"], r["room"], r["sender"] if r["sender"] in users else None,
                 r["sender_name"], r["body"], r["created_at"], r.get("offset"),
                 r.get("api_key"))
                for r in rows if r["room"] in alive]
        if keep:
            with peewee.__exception_wrapper__:  # DB-API errors as peewee's (retries)
                _insert_rows(database, keep)
            if webhooks is not None:
                webhooks.record_messages([(r["room"], _public(r)) for r in rows
                                          if r["room"] in alive])
    return len(keep)


def _existing(database: peewee.Database, table: str, column: str, values: set[Any]) -> set[Any]:
    """Returns which of values are present in table's column."""
    marks = ", ".join([database.param] * len(values))
    cursor = database.execute_sql(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IN ({marks})',
                                  list(values))
    return {value for (value,) in cursor.fetchall()}


def _insert_rows(database: peewee.Database, rows: list[tuple[Any, ...]]) -> None:
    """Inserts rows, skipping ids already stored: SQLite runs one prepared statement per row,
    PostgreSQL gets one multi-row statement (psycopg2's executemany is a round trip a row)."""
    cursor = database.cursor()
    if isinstance(database, peewee.SqliteDatabase):
        cursor.executemany(f'INSERT OR IGNORE INTO "room_messages" ({_INSERT_COLUMNS}) '
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    cursor.execute(f'INSERT INTO "room_messages" ({_INSERT_COLUMNS}) VALUES {values} '
                   "ON CONFLICT DO NOTHING", [v for row in rows for v in row])
