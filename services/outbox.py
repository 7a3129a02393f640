"""The outbox relay: publishes committed feed events once each, in order, and marks them.

A service that changes users calls `stage()` inside its transaction, so the change and its
events commit together; after the commit it hands the rows to `Relay.publish()`, which
publishes them at once. Rows whose hand-over was lost (a crash between commit and publish,
an exception) are found by a poll every second, and every unpublished row is published on
start-up before the server serves. The broker positions each event (the feed's sequencer);
the relay then marks the row (offset, published_at) in write-behind batches, in order.
Deduplication by event id (the rows queued or recently published, plus the mark in the
database) means a kick and a poll never publish one row twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Protocol

from tornado.ioloop import IOLoop, PeriodicCallback

from hub.codec import decode_targets, encode_targets
from hub.events import Event, dumps, now_rfc3339
from hub.feed import FeedEvent
from hub.history import StreamUnavailable
from hub.hub import Hub
from hub.messages import FEED, Target
from models.db import Runner, write_tx
from models.outbox import OutboxEvent

__all__ = ["Row", "stage", "Relay", "FeedWebhooks"]

log = logging.getLogger("outbox")

POLL_SECONDS = 1.0
POLL_BATCH = 500
MARK_BATCH = 500
RECENT_IDS = 20_000  # published ids remembered beyond their mark (see _evict)
RETRY_SECONDS = 0.05
RETRY_CAP = 2.0  # seconds between attempts while the broker cannot number rows
PURGE_INTERVAL_MS = 3600 * 1000


@dataclass(frozen=True, slots=True)
class Row:
    """A committed outbox row on its way to the hub."""

    event_id: str
    type: str
    data: dict[str, Any]
    targets: tuple[Target, ...]
    timestamp: str


def stage(events: list[FeedEvent]) -> list[Row]:
    """Inserts feed events as outbox rows; call inside the transaction of the change."""
    rows = [Row(str(uuid.uuid4()), str(e.type), e.data, e.targets, now_rfc3339())
            for e in events]
    if rows:
        OutboxEvent.insert_many([
            {"event_id": r.event_id, "stream": FEED, "type": r.type, "data": dumps(r.data),
             "targets": encode_targets(r.targets), "timestamp": r.timestamp} for r in rows
        ]).execute()
    return rows


class FeedWebhooks(Protocol):
    """Records the webhooks of staged feed events (services/webhooks.py Webhooks)."""

    def record_feed(self, rows: list[Row]) -> None: ...

    def kick(self) -> None: ...


def _unpublished(limit: int) -> list[Row]:
    query = (OutboxEvent.select().where(OutboxEvent.offset.is_null())
             .order_by(OutboxEvent.id).limit(limit))
    return [Row(o.event_id, o.type, json.loads(o.data), decode_targets(o.targets), o.timestamp)
            for o in query]


def _mark(marks: list[tuple[str, int, float]]) -> None:
    with write_tx():
        for event_id, offset, at in marks:
            OutboxEvent.update(offset=offset, published_at=at).where(
                (OutboxEvent.event_id == event_id) & OutboxEvent.offset.is_null()).execute()


class Relay:
    """Publishes committed outbox rows through the hub; one per application, on the IOLoop."""

    def __init__(self, run: Runner, hub: Hub, retention_days: int = 30) -> None:
        self.run = run
        self.hub = hub
        self.retention = retention_days * 86400.0
        self._queue: deque[Row] = deque()
        # event id -> number of the mark batch that stored it (None while it is pending).
        self._known: OrderedDict[str, int | None] = OrderedDict()
        self._marks: list[tuple[str, int, float]] = []
        self._batches = 0  # mark batches committed so far
        self._safe = 0  # mark batches committed before the last finished poll began
        self._mark_task: asyncio.Future | None = None
        self._retry: object | None = None
        self._drain_task: asyncio.Future | None = None
        # Rows handed to a deferred broker, oldest first, with the futures of their offsets.
        self._inflight: deque[tuple[Row, asyncio.Future]] = deque()
        self._backing_off = False
        self._poll: PeriodicCallback | None = None
        self._purge: PeriodicCallback | None = None
        self._polling = False
        self.published = 0
        # event id -> the future of its offset, for callers that answer with it (notify).
        self._waiters: dict[str, asyncio.Future[int]] = {}
        # Set when the application wants user.* feed events as webhooks (app.py).
        self.webhooks: FeedWebhooks | None = None

    def stage(self, events: list[FeedEvent]) -> list[Row]:
        """Stages feed events (stage()) with the webhooks wanted of them, in the caller's
        transaction."""
        rows = stage(events)
        if self.webhooks is not None and rows:
            self.webhooks.record_feed(rows)
        return rows

    # -- publishing ----------------------------------------------------------------------

    def publish(self, rows: list[Row]) -> int:
        """Publishes committed rows now (in order, after any still waiting); returns the
        first one's local recipients (0 if it has to wait for the stream)."""
        before = self.published
        if rows and self.webhooks is not None:  # committed: their webhooks may go
            self.webhooks.kick()
        first = self._enqueue(rows)
        counts = self._drain()
        return counts.get(first, 0) if self.published > before else 0

    def _enqueue(self, rows: list[Row]) -> str | None:
        first = None
        for row in rows:
            if row.event_id in self._known:
                continue
            self._known[row.event_id] = None
            self._queue.append(row)
            first = first or row.event_id
        return first

    def _drain(self) -> dict[str, int]:
        if self.hub.broker.deferred:  # Redis numbers the rows: marked once they are
            self._submit()
            return {}
        counts: dict[str, int] = {}
        while self._queue:
            row = self._queue[0]
            event = Event(row.type, row.data, row.timestamp)
            try:
                counts[row.event_id] = self.hub.publish(event, row.targets, logged=True)
            except StreamUnavailable:  # waiting for the feed's next offset reservation
                if self._retry is None:
                    self._retry = IOLoop.current().call_later(RETRY_SECONDS, self._retry_now)
                break
            self._queue.popleft()
            self.published += 1
            offset = int(self.hub.broker.log.position(FEED)[1])
            self._numbered(row.event_id, offset)
        if self._marks and self._mark_task is None:
            self._mark_task = asyncio.ensure_future(self._write_marks())
        return counts

    def _submit(self) -> None:
        """Hands every queued row to a broker that numbers rows remotely (Redis), in order:
        each takes its place in the node's publishing order at once; _settle() marks them."""
        while self._queue and not self._backing_off:
            row = self._queue.popleft()
            future = self.hub.publish_logged(Event(row.type, row.data, row.timestamp),
                                             row.targets, row.event_id)
            future.add_done_callback(_retrieve)
            self._inflight.append((row, future))
        if self._inflight and self._drain_task is None:
            self._drain_task = asyncio.ensure_future(self._settle())

    async def _settle(self) -> None:
        """Marks the submitted rows as they are numbered. A row that cannot be numbered
        (Redis is down) goes back to the queue with every row after it, and all are
        submitted again after a backoff; the row's event id is the idempotency key, so a row
        that did get through (or another node published) is not published twice."""
        attempt = 0
        try:
            while self._inflight:
                row, future = self._inflight[0]
                try:
                    offset, _ = await future
                except Exception as exc:
                    if not isinstance(exc, StreamUnavailable):
                        log.error("publishing outbox row %s failed: %r", row.event_id, exc)
                    self._queue.extendleft(reversed([r for r, _ in self._inflight]))
                    self._inflight.clear()
                    attempt += 1
                    self._backing_off = True
                    await asyncio.sleep(min(RETRY_CAP, RETRY_SECONDS * 2 ** attempt))
                    self._backing_off = False
                    self._submit()
                    continue
                attempt = 0
                self._inflight.popleft()
                self.published += 1
                self._numbered(row.event_id, int(offset))
                if self._mark_task is None:
                    self._mark_task = asyncio.ensure_future(self._write_marks())
        finally:
            self._drain_task = None
            self._backing_off = False

    def _numbered(self, event_id: str, offset: int) -> None:
        """Records a row's offset for its mark, and tells whoever waits for it."""
        self._marks.append((event_id, offset, time.time()))
        waiter = self._waiters.pop(event_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(offset)

    def expect(self, event_id: str) -> asyncio.Future[int]:
        """Returns a future of a row's offset in the feed, resolved once it is numbered; call
        before handing the row to publish() (notify answers with the offset)."""
        waiter = self._waiters.get(event_id)
        if waiter is None:
            waiter = self._waiters[event_id] = asyncio.get_running_loop().create_future()
        return waiter

    def forget(self, event_id: str) -> None:
        """Drops a waiter nobody awaits any more (its caller timed out)."""
        self._waiters.pop(event_id, None)

    def _retry_now(self) -> None:
        self._retry = None
        self._drain()

    async def _write_marks(self) -> None:
        try:
            while self._marks:
                batch = self._marks[:MARK_BATCH]
                try:
                    await self.run(_mark, batch)
                except Exception:
                    log.exception("marking %d outbox rows failed; retrying in 1 s", len(batch))
                    await asyncio.sleep(1.0)
                    continue
                del self._marks[:len(batch)]
                self._batches += 1
                for event_id, _, _ in batch:
                    if event_id in self._known:
                        self._known[event_id] = self._batches
                self._evict()
        finally:
            self._mark_task = None

    def _evict(self) -> None:
        """Forgets the oldest published ids, but only those a poll can no longer read as
        unpublished: marked by a batch committed before the last finished poll began."""
        known = self._known
        while len(known) > RECENT_IDS:
            event_id, batch = next(iter(known.items()))
            if batch is None or batch > self._safe:
                break
            known.popitem(last=False)

    # -- polling -------------------------------------------------------------------------

    async def poll(self) -> int:
        """Publishes committed rows left unpublished; returns how many it found."""
        if self._polling:
            return 0
        self._polling = True
        started = self._batches
        try:
            rows = await self.run(_unpublished, POLL_BATCH)
        except Exception:
            log.exception("reading unpublished outbox rows failed")
            return 0
        finally:
            self._polling = False
        self._safe = max(self._safe, started)
        fresh = [r for r in rows if r.event_id not in self._known]
        if fresh:
            log.warning("publishing %d outbox row(s) left unpublished", len(fresh))
            self._enqueue(fresh)
            self._drain()
        return len(fresh)

    async def start(self) -> None:
        """Publishes every unpublished row (start-up, before serving), then polls every second."""
        while await self.poll():
            pass
        if self.hub.broker.deferred:  # give the rows found a moment to be numbered
            await self.drained(5.0)
        self._poll = PeriodicCallback(self.poll, POLL_SECONDS * 1000)
        self._poll.start()
        self._purge = PeriodicCallback(self.purge, PURGE_INTERVAL_MS)
        self._purge.start()

    async def purge(self) -> int:
        """Deletes rows published longer ago than the retention (the log keeps far fewer)."""
        cutoff = time.time() - self.retention
        try:
            return await self.run(lambda: OutboxEvent.delete().where(
                OutboxEvent.published_at < cutoff).execute())
        except Exception:
            log.exception("purging old outbox rows failed")
            return 0

    def stop_polling(self) -> None:
        """Stops the periodic poll and purge."""
        for timer in (self._poll, self._purge):
            if timer is not None:
                timer.stop()
        self._poll = self._purge = None

    async def flush(self) -> bool:
        """Writes every pending mark now; True when nothing is left waiting or unmarked."""
        while self._mark_task is not None or self._marks:
            if self._mark_task is None:
                self._mark_task = asyncio.ensure_future(self._write_marks())
            await self._mark_task
        return not self._queue and not self._inflight and not self._marks

    async def close(self) -> bool:
        """Stops polling and retrying and flushes the marks (shutdown)."""
        self.stop_polling()
        if self._retry is not None:
            IOLoop.current().remove_timeout(self._retry)
            self._retry = None
        if self.hub.broker.deferred:  # rows handed to Redis: let them be numbered, if it can
            await self.drained(2.0)
        if self._drain_task is not None:
            self._drain_task.cancel()
            self._drain_task = None
        return await self.flush()

    async def drained(self, timeout: float) -> bool:
        """Waits up to timeout for every queued row to be published; True if none is left."""
        deadline = time.monotonic() + timeout
        while (self._queue or self._inflight) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return not self._queue and not self._inflight

    def publish_unlogged(self, events: list[FeedEvent]) -> int:
        """Publishes events at once without a position (they cannot be replayed), for news
        that cannot wait for the database: a health flip while it is down."""
        return sum(self.hub.publish(Event(e.type, e.data), e.targets) for e in events)

    async def emit(self, events: list[FeedEvent]) -> int:
        """Stages events in a transaction of their own and publishes them (events that
        announce no database change: system alerts, health flips)."""
        def tx() -> list[Row]:
            with write_tx():
                return stage(events)

        return self.publish(await self.run(tx))


def _retrieve(future: asyncio.Future) -> None:
    """Consumes a failed future's exception (the settle loop reports the first one)."""
    if not future.cancelled():
        future.exception()
