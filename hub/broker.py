"""The Broker seam between publishing and delivery, and the in-memory single-node broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from hub.history import MemoryLog, StreamLog, StreamUnavailable
from hub.messages import Message, Publication

__all__ = ["Handler", "Broker", "MemoryBroker", "new_node_id"]

# Applies one message to the local hub; returns the local connections it reached or touched.
Handler = Callable[[Message], int]


def new_node_id() -> str:
    """Returns a fresh id for this process's node: unique across restarts and hosts."""
    return uuid.uuid4().hex[:12]


class Broker(Protocol):
    """Carries published messages to the hub of every node, this one included.

    The application context creates the broker, attaches the hub's handler and starts it;
    the hub only publishes through it.
    """

    node_id: str
    # The recovery log: the sequencer and history of every stream (feed, rooms).
    log: StreamLog

    def attach(self, handler: Handler) -> None:
        """Sets the callback that applies a message to the local hub."""

    async def start(self) -> None:
        """Connects and begins receiving other nodes' messages."""

    # True when publish() only queues (the Redis broker): a caller that needs a logged
    # publication's offset, or to know it was sequenced, awaits publish_logged().
    deferred: bool

    def publish(self, message: Message) -> int:
        """Publishes message to every node.

        Promise: a logged publication is first given its position in its stream and appended
        to that stream's history (raising StreamUnavailable when the stream has no reserved
        offset left), then applied to this node's hub at once, before publish returns, then
        sent to every other node, which applies it once. The return value counts only this
        node's connections that received it (or, for a control, that it touched); other
        nodes' counts are not known to the caller.

        A deferred broker (Redis) only queues the message here and returns 0 for a
        publication (every node, this one included, applies it when Redis hands it back);
        a control is applied to this node at once and its count returned.
        """

    def publish_logged(self, message: Publication, key: str | None = None
                       ) -> asyncio.Future[tuple[str, int]]:
        """Positions, logs and publishes a logged publication; the future gives (offset,
        local recipients).

        The message takes its place in this node's publishing order before this returns
        (so a control published next comes after it). The future fails with
        StreamUnavailable when it cannot be numbered. `key` (an event id) makes it idempotent
        where the log is shared: a key published before gets the first offset and nothing
        is delivered again (the memory broker has one relay and ignores it).
        """

    async def close(self) -> None:
        """Stops receiving and releases the broker's resources."""


class MemoryBroker:
    """Delivers to this process's hub at once. With this broker you can only run a single node.

    Its log is in memory: the IOLoop is the one sequencer of every stream, so every
    subscriber sees the same order, and positioning plus delivery happen in one step.
    """

    def __init__(self, node_id: str | None = None, log: MemoryLog | None = None) -> None:
        self.node_id = node_id or new_node_id()
        self.log = log or MemoryLog()
        self._handler: Handler | None = None

    def attach(self, handler: Handler) -> None:
        """Sets the local delivery callback."""
        self._handler = handler

    async def start(self) -> None:
        """Nothing to connect to."""

    deferred = False

    def publish(self, message: Message) -> int:
        """Positions a logged publication, then applies message to the local hub synchronously."""
        if self._handler is None:
            raise RuntimeError("MemoryBroker.publish called before attach()")
        if isinstance(message, Publication) and message.logged:
            event = self.log.append(message.stream, message.targets, message.event)
            message = replace(message, event=event)
        return self._handler(message)

    def publish_logged(self, message: Publication, key: str | None = None
                       ) -> asyncio.Future[tuple[str, int]]:
        """Positions and delivers a logged publication at once; the future is already done."""
        if self._handler is None:
            raise RuntimeError("MemoryBroker.publish_logged called before attach()")
        future: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        try:
            event = self.log.append(message.stream, message.targets, message.event)
        except StreamUnavailable as exc:
            future.set_exception(exc)
            return future
        future.set_result((event.offset or "", self._handler(replace(message, event=event))))
        return future

    async def close(self) -> None:
        """Forgets the handler; nothing else to release."""
        self._handler = None
