"""The Broker seam between publishing and delivery, and the in-memory single-node broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hub.events import Control, Delivery

__all__ = ["Message", "Broker", "MemoryBroker"]

Message = Delivery | Control
Handler = Callable[[Message], int]


class Broker(Protocol):
    """Carries published messages to the hub of every node (including this one)."""

    def attach(self, handler: Handler) -> None:
        """Sets the callback that applies a message to the local hub; returns local recipients."""

    def publish(self, message: Message) -> int:
        """Sends message to every node; returns how many local connections received it."""

    async def close(self) -> None:
        """Releases the broker's resources."""


class MemoryBroker:
    """Delivers to this process's hub at once. With this broker you can only run a single node."""

    def __init__(self) -> None:
        self._handler: Handler | None = None

    def attach(self, handler: Handler) -> None:
        """Sets the local delivery callback."""
        self._handler = handler

    def publish(self, message: Message) -> int:
        """Applies message to the local hub synchronously."""
        if self._handler is None:
            raise RuntimeError("MemoryBroker.publish called before attach()")
        return self._handler(message)

    async def close(self) -> None:
        """Forgets the handler; nothing else to release."""
        self._handler = None
