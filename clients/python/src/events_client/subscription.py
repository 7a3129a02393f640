"""Subscription: one room the client keeps subscribed, across reconnects."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .errors import ConnectionLost

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Subscription"]


class Subscription:
    """A room (`room:<name>`) the client is subscribed to. Its events come through
    `Client.events()` with `event.channel` set; after a reconnect the client re-subscribes it
    from its last offset by itself."""

    def __init__(self, client: Client, channel: str) -> None:
        self.channel = channel
        self._client = client
        # The latest subscribe reply: {channel, subscribed, epoch, offset, recovered, missed}.
        self.reply: dict[str, Any] | None = None
        # Why the room was left (a refusal, channel.unsubscribed, a revoked session), if so.
        self.error: BaseException | None = None
        self.active = True
        self._ready: asyncio.Future[Subscription] = asyncio.get_running_loop().create_future()
        # Read the outcome once, so that nobody waiting is not a "never retrieved" warning.
        self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())

    def __repr__(self) -> str:
        state = "active" if self.active else "left"
        return f"<Subscription {self.channel} {state} offset={self.offset}>"

    @property
    def epoch(self) -> str | None:
        """The room's epoch, from the latest subscribe reply."""
        return None if self.reply is None else self.reply.get("epoch")

    @property
    def offset(self) -> str | None:
        """The offset of the last room event delivered (the position a resume sends)."""
        return self._client.position(self.channel)

    @property
    def recovered(self) -> bool:
        """The latest subscribe reply's `recovered` (False on a first subscription)."""
        return bool(self.reply and self.reply.get("recovered"))

    @property
    def missed(self) -> int:
        """The latest subscribe reply's `missed`: events replayed by that resume."""
        return int(self.reply.get("missed") or 0) if self.reply else 0

    async def publish(self, data: dict[str, Any]) -> dict[str, Any]:
        """Publishes a JSON object to the room; returns the reply {channel, id, sent_at,
        offset} or raises RequestError with the server's code."""
        return await self._client.publish(self.channel, data)

    async def presence(self) -> list[dict[str, Any]]:
        """Returns who is in the room: [{user_id, name, connections}]."""
        return await self._client.presence(self.channel)

    async def history(self, *, before: str | None = None, limit: int | None = None
                      ) -> list[dict[str, Any]]:
        """Returns stored messages, newest first (`before`: a message id; `limit` 1-100)."""
        return await self._client.history(self.channel, before=before, limit=limit)

    async def typing(self, active: bool = True) -> None:
        """Tells the room's other users that this user is (or stopped) typing."""
        await self._client.typing(self.channel, active)

    async def unsubscribe(self) -> None:
        """Leaves the room: no more of its events, no re-subscription after a reconnect."""
        await self._client.unsubscribe(self.channel)

    async def wait(self) -> Subscription:
        """Returns once the room's first subscribe reply came; raises what refused it."""
        return await asyncio.shield(self._ready)

    # Called by the client.

    def answered(self, data: dict[str, Any]) -> None:
        """Takes a subscribe reply."""
        self.reply = data
        if not self._ready.done():
            self._ready.set_result(self)

    def left(self, error: BaseException | None) -> None:
        """Marks the room left (refused, removed, unsubscribed or the client failed)."""
        self.active = False
        self.error = error
        if not self._ready.done():
            self._ready.set_exception(error or ConnectionLost("left before the reply came"))
