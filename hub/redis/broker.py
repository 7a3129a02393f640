"""The Redis broker: several nodes on one Redis act as one server.

Every node listens on one pub/sub channel (`<prefix>:bus`) and applies what arrives there in
Redis's order, the publishing node included: a logged publication is numbered, appended to
its stream's history and published in one Lua script (hub/redis/scripts.py), so offsets
increase in delivery order on every node. Controls travel the same way, so they keep their
place after what the node published before them. What a node publishes goes out through one
queue, one pipeline at a time, so its own messages keep their order. A lost connection is
retried with exponential backoff and jitter; after resubscribing, every stream is caught up
from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from hub import codec
from hub.broker import Handler, new_node_id
from hub.disconnect import FELL_BEHIND
from hub.history import StreamUnavailable, new_epoch
from hub.messages import FEED, CloseStream, Message, Publication
from hub.redis.log import CONTROLS, REDIS_ERRORS, RedisLog
from hub.redis.scripts import PUBLISH_LUA, Keys

__all__ = ["RedisBroker", "backoff"]

log = logging.getLogger("redis.broker")

BATCH = 256  # messages per pipeline
# Seconds a logged publication's idempotency key is remembered: a feed event's (an outbox
# row's event id) long enough for every node's relay to see the row marked; a room
# message's long enough for a retried pipeline.
FEED_SEEN_TTL = 600
OTHER_SEEN_TTL = 30
BACKOFF_BASE = 0.05
BACKOFF_CAP = 5.0


def backoff(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Returns the wait before retry number `attempt`: exponential, capped, full jitter."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


@dataclass(slots=True)
class _Outgoing:
    """One message waiting to be sent: the bus frame, or a logged publication's script call."""

    frame: bytes
    stream: str | None = None  # set for a logged message: numbered in this stream
    key: str = ""
    future: asyncio.Future | None = None
    control: bool = False  # retried until sent: other nodes must apply it
    applied: bool = False  # a control already applied here (Redis was down)


class RedisBroker:
    """A Broker over Redis pub/sub, with Redis as every stream's sequencer and log."""

    # publish() only queues: the offset of a logged publication comes from publish_logged().
    deferred = True

    def __init__(self, redis: Any, listener: Any, prefix: str = "events", size: int = 1000,
                 ttl: float = 600.0, node_id: str | None = None) -> None:
        self.node_id = node_id or new_node_id()
        self.redis = redis
        self.listener = listener  # a client without retries: the bus connection's own
        self.keys = Keys(prefix)
        self.ttl = ttl
        self.log = RedisLog(redis, self.keys, size, ttl)
        self.log.deliver = self._deliver
        self.log.on_lost = self._lost
        self._publish = redis.register_script(PUBLISH_LUA)
        self._handler: Handler | None = None
        self._queue: deque[_Outgoing] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Future] = []
        self._subscribed = asyncio.Event()
        self._closed = False
        self.listening = False  # the bus is subscribed
        self.sending = True  # the last pipeline (or ping) went through

    @property
    def healthy(self) -> bool:
        """True while the bus is subscribed and commands go through."""
        return self.listening and self.sending

    def attach(self, handler: Handler) -> None:
        """Sets the callback that applies a message to the local hub."""
        self._handler = handler

    async def start(self, timeout: float = 10.0) -> None:
        """Starts listening and sending; waits (up to timeout) for the first subscription."""
        self._tasks = [asyncio.ensure_future(self._listen()),
                       asyncio.ensure_future(self._send_loop())]
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
            await self.log.prepare(CONTROLS)  # from now on a missed control is caught up
        except (TimeoutError, StreamUnavailable):
            log.error("Redis is unreachable: serving degraded until it answers")

    # -- publishing ------------------------------------------------------------------------

    def publish(self, message: Message) -> int:
        """Queues message for every node, this one included: each applies it when it comes
        back from the bus, in Redis's order (so a control follows what was published before
        it). While Redis is unreachable a control is also applied here at once (and returns
        its local count), and reaches the other nodes once Redis is back."""
        if isinstance(message, Publication):
            if message.logged:
                self.publish_logged(message).add_done_callback(_log_failure)
            elif self.sending:  # ephemeral (typing, presence): dropped while Redis is down
                self._put(_Outgoing(self._frame(message)))
            return 0
        touched = 0 if self.sending else self._apply(message)
        self._put(_Outgoing(self._frame(message), CONTROLS, uuid.uuid4().hex, control=True,
                            applied=not self.sending))
        return touched

    def publish_logged(self, message: Publication, key: str | None = None
                       ) -> asyncio.Future[tuple[str, int]]:
        """Queues message to be numbered, logged and published by the Lua script; the future
        gives (offset, 0: local delivery follows from the bus). `key` makes it idempotent: a
        key published before gets the first offset and nothing is published again. Fails
        with StreamUnavailable at once while Redis is unreachable."""
        future: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        if not self.sending:
            future.set_exception(StreamUnavailable(message.stream))
        else:
            self._put(_Outgoing(self._frame(message), message.stream, key or uuid.uuid4().hex,
                                future))
        return future

    def _frame(self, message: Message) -> bytes:
        return codec.encode(message, self.node_id)

    def _put(self, item: _Outgoing) -> None:
        self._queue.append(item)
        self._wake.set()

    async def _send_loop(self) -> None:
        attempt = 0
        while not self._closed:
            if not self.sending:  # wait for Redis with backoff before sending again
                attempt += 1
                await asyncio.sleep(backoff(attempt))
                await self._ping()
                continue
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            try:
                results = await self._send(batch)
            except REDIS_ERRORS as exc:
                self._failed(batch, exc)
                continue
            attempt = 0
            for item, result in zip(batch, results, strict=True):
                if item.future is None or item.future.done():
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(StreamUnavailable(str(result)))
                else:
                    item.future.set_result((str(int(result[0])), 0))

    async def _send(self, batch: list[_Outgoing]) -> list[Any]:
        now = str(int(time.time() * 1000))
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in batch:
                stream = item.stream
                if stream is None:
                    pipe.publish(self.keys.bus, b"::" + item.frame)
                    continue
                await self._publish(
                    keys=[self.keys.meta(stream), self.keys.log(stream), self.keys.seen(item.key)],
                    args=[item.frame, self.log.size, max(1, int(self.ttl)), new_epoch(),
                          self.keys.bus, now, FEED_SEEN_TTL if stream == FEED else OTHER_SEEN_TTL],
                    client=pipe)
            return await pipe.execute(raise_on_error=False)

    def _failed(self, batch: list[_Outgoing], exc: BaseException) -> None:
        """Fails the batch's logged publications (callers answer `unavailable`) and every
        one still queued, drops ephemeral ones and keeps controls, in order, to retry."""
        if self.sending:
            log.warning("Redis unreachable for publishing (%s): retrying with backoff", exc)
        self.sending = False
        keep = [item for item in batch if item.control]
        for item in [*batch, *self._queue]:
            if item.future is not None and not item.future.done():
                item.future.set_exception(StreamUnavailable(str(exc)))
        self._queue = deque([*keep, *(item for item in self._queue if item.control)])
        for item in self._queue:  # local sockets feel a control now, not when Redis is back
            if not item.applied:
                item.applied = True
                self._apply(codec.decode(item.frame)[1])

    async def _ping(self) -> None:
        try:
            await self.redis.ping()
        except REDIS_ERRORS:
            return
        if not self.sending:
            log.warning("Redis answers again: publishing resumes")
        self.sending = True

    # -- receiving -------------------------------------------------------------------------

    async def _listen(self) -> None:
        attempt = 0
        while not self._closed:
            pubsub = self.listener.pubsub()
            try:
                await pubsub.subscribe(self.keys.bus)
                self.listening = True
                self._subscribed.set()
                if attempt:
                    log.warning("Redis bus subscribed again: catching up every stream")
                    self._tasks.append(asyncio.ensure_future(self.log.resync()))
                attempt = 0
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._receive(message["data"])
                raise ConnectionError("the bus subscription ended")
            except REDIS_ERRORS as exc:
                if self.listening or attempt == 0:
                    log.warning("Redis bus connection lost (%s): reconnecting", exc)
                self.listening = False
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            attempt += 1
            await asyncio.sleep(backoff(attempt))

    def _receive(self, data: bytes) -> None:
        try:
            head, epoch, frame = data.split(b":", 2)
            _, message = codec.decode(frame)
        except (ValueError, codec.CodecError):
            log.error("dropped an undecodable bus message (%d bytes)", len(data))
            return
        if not head:
            self._apply(message)
        else:
            stream = message.stream if isinstance(message, Publication) else CONTROLS
            self.log.receive(stream, epoch.decode(), int(head), message)

    def _deliver(self, message: Message) -> object:
        return self._apply(message)

    def _apply(self, message: Message) -> int:
        if self._handler is None:
            return 0
        try:
            return self._handler(message)
        except Exception:  # one bad message must not stop the bus
            log.exception("applying %s failed", type(message).__name__)
            return 0

    def _lost(self, stream: str) -> None:
        # Missed controls cannot be known: every local socket resumes (and is checked again).
        self._apply(CloseStream(FEED if stream == CONTROLS else stream, FELL_BEHIND))

    async def close(self) -> None:
        """Stops listening and sending (queued controls get a last chance) and disconnects."""
        if self._queue and self.sending:
            with contextlib.suppress(*REDIS_ERRORS):
                await asyncio.wait_for(self._send(list(self._queue)), 2.0)
        self._closed = True
        self.log.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._handler = None
        with contextlib.suppress(Exception):
            await self.listener.aclose()


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a logged publication was not sent: %s", future.exception())
