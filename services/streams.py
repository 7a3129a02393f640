"""Durable stream state: epochs, offset reservations, and the recovery log after a restart.

The sequencer (the broker's log) only uses offsets up to a reservation stored in the
`streams` table, reserved a block ahead, so an offset is never reused, not even after
SIGKILL. On start the feed keeps its epoch and its recent published outbox rows; a crash
(no clean shutdown) leaves the range between the last marked offset and the reservation
uncertain. Rooms keep their epoch and recent messages after a clean shutdown; after a crash
each room gets a new epoch (messages delivered but not yet stored are unknowable).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time

import peewee

from hub.codec import decode_targets
from hub.events import Event, EventType
from hub.history import Entry, MemoryLog, new_epoch
from hub.messages import FEED, ToChannel
from models.db import Runner, write_tx
from models.outbox import OutboxEvent
from models.outbox import StreamState as Row
from models.room import RoomMessage
from services.errors import ServiceError

__all__ = ["StreamStore", "StreamBusy", "BLOCK"]

log = logging.getLogger("streams")

BLOCK = 10_000


class StreamBusy(ServiceError):
    """The stream's next offsets are not reserved yet (the database is slow or down)."""

    status = 503
    code = "unavailable"


def _save(name: str, epoch: str, reserved: int, clean: bool, gaps: list) -> None:
    with write_tx():
        fields = {"epoch": epoch, "reserved": reserved, "clean": clean,
                  "gaps": json.dumps(gaps)}
        if not Row.update(**fields).where(Row.name == name).execute():
            Row.insert(name=name, **fields).execute()


class StreamStore:
    """Loads, reserves and saves the state of every stream of the broker's MemoryLog."""

    def __init__(self, run: Runner, log_: MemoryLog, block: int = BLOCK) -> None:
        self.run = run
        self.log = log_
        self.block = block
        self._inflight: dict[str, asyncio.Future] = {}

    def attach(self) -> None:
        """Makes the log ask for reservations: from now on it never goes past one."""
        self.log.on_low, self.log.low_water = self.request, self.block // 2
        for state in self.log.streams.values():
            if state.reserved is None:
                state.reserved = 0

    # -- reservations --------------------------------------------------------------------

    def request(self, stream: str, reserved: int) -> asyncio.Future:
        """Starts writing the stream's next reservation, unless one is being written."""
        pending = self._inflight.get(stream)
        if pending is None:
            pending = self._inflight[stream] = asyncio.ensure_future(self._reserve(stream))
        return pending

    async def _reserve(self, stream: str) -> None:
        state = self.log.stream(stream)
        target = max(state.reserved or 0, state.last) + self.block
        try:
            await self.run(_save, stream, state.epoch, target, False, state.gaps)
            self.log.reserve(stream, target)
        except Exception:
            log.exception("reserving offsets of %s failed", stream)
        finally:
            self._inflight.pop(stream, None)

    async def ready(self, stream: str, timeout: float = 5.0) -> None:
        """Returns once the stream can position an event; StreamBusy if it cannot soon."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.log.has_room(stream):
            if asyncio.get_running_loop().time() > deadline:
                raise StreamBusy("the server cannot number messages right now; retry later")
            await asyncio.shield(self.request(stream, 0))
            if not self.log.has_room(stream):
                await asyncio.sleep(0.1)

    # -- start and clean shutdown --------------------------------------------------------

    async def load(self) -> None:
        """Restores every stream's epoch, position and recent entries, then reserves ahead."""
        rows = await self.run(lambda: list(Row.select()))
        by_name = {r.name: r for r in rows}
        await self._load_feed(by_name.get(FEED))
        for row in rows:
            if row.name.startswith("room:"):
                await self._load_room(row)
        self.attach()
        for name in list(self.log.streams):
            await self.request(name, 0)
        feed = self.log.stream(FEED)
        if feed.gaps and feed.gaps[-1][1] == feed.last and feed.last < (feed.reserved or 0):
            feed.last += 1  # never announce the uncertain range's last offset as a position

    async def _load_feed(self, row: Row | None) -> None:
        size, since = self.log.size, time.time() - self.log.ttl

        def read() -> tuple[int, list[OutboxEvent]]:
            durable = OutboxEvent.select(peewee.fn.MAX(OutboxEvent.offset)).scalar() or 0
            recent = list(OutboxEvent.select().where(
                OutboxEvent.offset.is_null(False) & (OutboxEvent.published_at >= since))
                .order_by(OutboxEvent.offset.desc()).limit(size))
            return durable, recent

        durable, recent = await self.run(read)
        entries = [Entry(o.offset, decode_targets(o.targets),
                         Event(o.type, json.loads(o.data), o.timestamp, offset=str(o.offset)),
                         o.published_at) for o in recent]
        epoch = row.epoch if row else new_epoch()
        reserved = row.reserved if row else 0
        gaps = [tuple(g) for g in json.loads(row.gaps)] if row else []
        last = max(reserved, durable)
        if row is not None and not row.clean and reserved > durable:
            gaps.append((durable, reserved))
            log.warning("feed: offsets %d-%d are uncertain after a crash", durable + 1, reserved)
        self.log.restore(FEED, epoch, last, last, entries, gaps)

    async def _load_room(self, row: Row) -> None:
        if not row.clean:
            log.warning("%s: new epoch after a crash", row.name)
            self.log.restore(row.name, new_epoch(), row.reserved, row.reserved, [])
            return
        room, size = row.name[len("room:"):], self.log.size
        since = time.time() - self.log.ttl

        def read() -> list[RoomMessage]:
            return list(RoomMessage.select().where(
                (RoomMessage.room == room) & RoomMessage.offset.is_null(False))
                .order_by(RoomMessage.offset.desc()).limit(size))

        channel = (ToChannel(row.name),)
        entries = []
        for m in await self.run(read):
            at = m.created_at.replace(tzinfo=dt.UTC).timestamp()  # stored as naive UTC
            if at >= since:
                data = m.to_public()
                del data["offset"]
                event = Event(EventType.CHANNEL_MESSAGE, data, data["sent_at"],
                              channel=row.name, offset=str(m.offset))
                entries.append(Entry(m.offset, channel, event, at))
        self.log.restore(row.name, row.epoch, row.reserved, row.reserved, entries)

    async def save_clean(self, feed_clean: bool = True, rooms_clean: bool = True) -> None:
        """Stores every stream's last offset as its reservation, marked clean when everything
        it numbered is stored (shutdown, after the relay's marks and room messages)."""
        for name, state in list(self.log.streams.items()):
            clean = feed_clean if name == FEED else rooms_clean
            await self.run(_save, name, state.epoch, state.last if clean else
                           max(state.reserved or 0, state.last), clean, state.gaps)
