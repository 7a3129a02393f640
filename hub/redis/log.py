"""The StreamLog of the Redis broker: Redis numbers and keeps every stream, each node mirrors.

Redis is the sequencer and the recovery log (hub/redis/scripts.py). Each node keeps a mirror
of every stream it has seen (a MemoryLog without reservations): its epoch, the last offset
this node delivered to its own connections (`last`), and the recent entries up to it. The
mirror only grows by applying entries in offset order, so `(floor, last]` is always exactly
what this node's connections were sent: a resume reads it in one IOLoop turn, as with the
memory broker, after `prepare()` has filled in from Redis what the mirror lacks.

Entries arrive from the pub/sub bus in Redis's order. One that skips ahead (the bus was cut)
waits while the gap is read from the Redis Stream (XRANGE); one already applied is dropped.
A new epoch in Redis (it lost its data) restarts the mirror of that stream at offset 0.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hub import codec
from hub.history import Entry, MemoryLog, Recovery, StreamUnavailable, new_epoch, parse_offset
from hub.messages import Message, Publication
from hub.redis.scripts import POSITION_LUA, Keys

__all__ = ["RedisLog", "REDIS_ERRORS", "CONTROLS"]

log = logging.getLogger("redis.log")

try:  # the redis package is only needed with --broker=redis
    from redis.exceptions import RedisError

    REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
except ImportError:  # pragma: no cover - memory broker only
    REDIS_ERRORS = (OSError, TimeoutError)

PAGE = 1000  # entries per XRANGE call
# The stream of controls (role changes, closes, unsubscriptions): numbered and logged like
# the others, so a node whose bus connection was cut applies the ones it missed. Its mirror
# keeps no entries (nothing replays controls to clients), only its position.
CONTROLS = "_controls"
RETRY_CAP = 2.0  # seconds between attempts to read a gap while Redis is unreachable
FILL_TIMEOUT = 5.0  # seconds a resume waits for Redis before answering from the mirror


class RedisLog:
    """Per-stream mirrors fed in order from the bus, filled from Redis where they have gaps."""

    def __init__(self, redis: Any, keys: Keys, size: int = 1000, ttl: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.keys = keys
        self.size = size
        self.ttl = ttl
        self.mirror = MemoryLog(size, ttl, clock)
        self._position = redis.register_script(POSITION_LUA)
        # Set by the broker: applies a positioned publication (or a control) to the local hub.
        self.deliver: Callable[[Message], object] = lambda message: None
        # Set by the broker: called when a stream's gap cannot be filled any more.
        self.on_lost: Callable[[str], object] = lambda stream: None
        self._pending: dict[str, dict[int, Message]] = {}
        self._filling: dict[str, asyncio.Future] = {}
        self._generation: dict[str, int] = {}  # bumped when a stream's mirror restarts

    # -- the StreamLog role (read on the IOLoop, in the turn that registers) ----------------

    def recover(self, stream: str, since: object, epoch: object) -> Recovery:
        """Returns the entries after `since` from the mirror (prepare() first)."""
        if stream not in self.mirror.streams:
            raise StreamUnavailable(stream)
        return self.mirror.recover(stream, since, epoch)

    def position(self, stream: str) -> tuple[str, str]:
        """Returns (epoch, last offset delivered on this node) of a prepared stream."""
        if stream not in self.mirror.streams:
            raise StreamUnavailable(stream)
        return self.mirror.position(stream)

    def before(self, stream: str, offset: int | None, limit: int) -> list[Entry]:
        """Returns up to limit mirrored entries older than offset, newest first."""
        if stream not in self.mirror.streams:
            return []
        return self.mirror.before(stream, offset, limit)

    def sweep(self) -> int:
        """Ages out the mirror's entries past the TTL, as Redis expires its own."""
        return self.mirror.sweep()

    async def prepare(self, stream: str, since: object = None) -> None:
        """Makes recover(stream, since) answerable from the mirror: learns the stream's epoch
        and position, catches up to `since` if this node is behind it, and reads the entries
        after `since` that the mirror no longer (or never) held. StreamUnavailable if the
        stream is unknown here and Redis cannot be reached."""
        mirror = self.mirror
        if stream not in mirror.streams:
            try:
                epoch, top = await self._read_position(stream)
            except REDIS_ERRORS as exc:
                raise StreamUnavailable(stream) from exc
            if stream not in mirror.streams:
                mirror.restore(stream, epoch, top, None, [])
        offset = parse_offset(since)
        state = mirror.streams[stream]
        if offset is None:
            return
        try:
            if offset > state.last:  # the client saw more than this node has applied yet
                epoch, top = await self._read_position(stream)
                if epoch == state.epoch and offset <= top:
                    await asyncio.wait_for(self._fill(stream, top), FILL_TIMEOUT)
            state = mirror.streams[stream]
            if offset < state.floor:
                await asyncio.wait_for(self._extend(stream, offset), FILL_TIMEOUT)
        except REDIS_ERRORS as exc:  # recover() then answers from what the mirror has
            log.warning("%s: reading missed entries failed (%s)", stream, exc)

    async def _extend(self, stream: str, offset: int) -> None:
        """Adds the entries (offset, floor] read from Redis below the mirror's floor."""
        state, generation = self.mirror.streams[stream], self._generation.get(stream, 0)
        floor = state.floor
        entries = [Entry(o, m.targets, m.event, at) for o, m, at in
                   await self._range(stream, offset + 1, floor) if isinstance(m, Publication)]
        if self._generation.get(stream, 0) != generation or state.floor != floor:
            return
        if not entries or entries[0].offset != offset + 1 or entries[-1].offset != floor:
            return  # trimmed or expired in Redis too: recover() answers recovered: false
        merged = entries + list(state.entries)
        state.entries = deque(merged[-max(self.size, 1):])
        state.floor = state.entries[0].offset - 1

    # -- the live path (the broker calls receive() for each logged bus message, in order) ---

    def receive(self, stream: str, epoch: str, offset: int, publication: Message) -> None:
        """Applies a logged publication (or control) from the bus in offset order, once."""
        state = self.mirror.streams.get(stream)
        if state is None:  # nobody here follows it yet: its history starts now
            self.mirror.restore(stream, epoch, offset - 1, None, [])
            state = self.mirror.streams[stream]
        elif state.epoch != epoch:
            log.warning("%s: new epoch %s (Redis lost the stream): numbering restarts", stream,
                        epoch)
            state = self._restart(stream, epoch)
        if stream in self._filling:
            self._pending.setdefault(stream, {})[offset] = publication
        elif offset == state.last + 1:
            self._apply(stream, publication)
        elif offset > state.last + 1:
            self._pending.setdefault(stream, {})[offset] = publication
            self._start_fill(stream, offset - 1)

    def _restart(self, stream: str, epoch: str) -> Any:
        self._generation[stream] = self._generation.get(stream, 0) + 1
        self._pending.pop(stream, None)
        self.mirror.restore(stream, epoch, 0, None, [])
        return self.mirror.streams[stream]

    def _apply(self, stream: str, message: Message) -> None:
        if isinstance(message, Publication):
            event = self.mirror.append(stream, message.targets, message.event)
            message = replace(message, event=event)
        else:
            state = self.mirror.streams[stream]
            state.last = state.floor = state.last + 1
        self.deliver(message)

    def _start_fill(self, stream: str, upto: int) -> asyncio.Future:
        task = self._filling.get(stream)
        if task is None:
            task = self._filling[stream] = asyncio.ensure_future(self._fill_loop(stream, upto))
        return task

    async def _fill(self, stream: str, upto: int) -> None:
        """Returns once this node applied the stream up to `upto` (or the stream restarted)."""
        generation = self._generation.get(stream, 0)
        while (self.mirror.streams[stream].last < upto
               and self._generation.get(stream, 0) == generation):
            await asyncio.shield(self._start_fill(stream, upto))

    def close(self) -> None:
        """Stops every gap being filled (shutdown)."""
        for task in list(self._filling.values()):
            task.cancel()

    async def _fill_loop(self, stream: str, upto: int) -> None:
        """Reads and applies the entries up to `upto` the bus did not bring, then what waited."""
        attempt = 0
        try:
            while True:
                state = self.mirror.streams[stream]
                generation = self._generation.get(stream, 0)
                if state.last >= upto:
                    break
                try:
                    entries = await self._range(stream, state.last + 1, upto)
                except REDIS_ERRORS as exc:
                    attempt += 1
                    log.warning("%s: reading offsets %d-%d failed (%s); retrying", stream,
                                state.last + 1, upto, exc)
                    await asyncio.sleep(random.uniform(0, min(RETRY_CAP, 0.05 * 2 ** attempt)))
                    continue
                if self._generation.get(stream, 0) != generation:
                    break
                if not entries or entries[0][0] != state.last + 1:
                    self._lost(stream, upto)
                    break
                for offset, message, _ in entries:
                    if offset == state.last + 1:
                        self._apply(stream, message)
        finally:
            self._filling.pop(stream, None)
        self._drain_pending(stream)

    def _lost(self, stream: str, upto: int) -> None:
        """Skips entries Redis no longer holds; the stream's followers here must resume."""
        state = self.mirror.streams[stream]
        log.error("%s: offsets %d-%d are gone from Redis: closing its followers here", stream,
                  state.last + 1, upto)
        state.last = state.floor = upto
        state.entries.clear()
        self.on_lost(stream)

    def _drain_pending(self, stream: str) -> None:
        pending = self._pending.get(stream)
        if not pending:
            return
        state = self.mirror.streams[stream]
        while state.last + 1 in pending:
            self._apply(stream, pending.pop(state.last + 1))
        for offset in [o for o in pending if o <= state.last]:
            del pending[offset]
        if pending:
            self._start_fill(stream, min(pending) - 1)
        else:
            self._pending.pop(stream, None)

    async def resync(self) -> None:
        """Catches every mirrored stream up with Redis (after the bus was resubscribed)."""
        for stream in list(self.mirror.streams):
            try:
                epoch, top = await self._read_position(stream)
            except REDIS_ERRORS as exc:
                log.warning("resync of %s failed (%s)", stream, exc)
                continue
            state = self.mirror.streams[stream]
            if epoch != state.epoch:
                log.warning("%s: new epoch %s after a Redis restart", stream, epoch)
                state = self._restart(stream, epoch)
            if top > state.last:
                await self._fill(stream, top)

    # -- Redis reads -----------------------------------------------------------------------

    async def _read_position(self, stream: str) -> tuple[str, int]:
        epoch, top = await self._position(
            keys=[self.keys.meta(stream), self.keys.log(stream)], args=[new_epoch()])
        return epoch.decode() if isinstance(epoch, bytes) else str(epoch), int(top or 0)

    async def _range(self, stream: str, low: int, high: int
                     ) -> list[tuple[int, Message, float]]:
        """Returns (offset, message, publish time) of the entries low..high (inclusive) that
        Redis still holds, in order; a publication's event carries its offset."""
        out: list[tuple[int, Message, float]] = []
        start = low
        while start <= high:
            rows = await self.redis.xrange(self.keys.log(stream), f"{start}-0", f"{high}-0",
                                           count=PAGE)
            for entry_id, fields in rows:
                offset = int(entry_id.split(b"-")[0])
                _, message = codec.decode(fields[b"d"])
                if isinstance(message, Publication):
                    message = replace(message, event=replace(message.event, offset=str(offset)))
                out.append((offset, message, int(fields.get(b"t", b"0")) / 1000.0))
            if len(rows) < PAGE:
                break
            start = out[-1][0] + 1
        return out
