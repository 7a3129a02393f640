"""Receiver: what the client does with each server frame, in the order frames arrive.

Everything here runs in the reader, one frame at a time and without waiting between a frame
and its effects, so positions, replays, duplicates and the `recovery` event are decided in
the exact order the server sent them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .errors import ConnectionLost, RequestError
from .event import Event
from .requests import Requests
from .streams import FEED, Report, Streams

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Receiver"]

log = logging.getLogger("events_client")

WELCOME = "connection.established"
ANSWERS = ("reply", "error", "auth.refreshed")  # answers to a request, when they carry its id


class Receiver:
    """Reads frames: welcomes, answers to requests and events for `Client.events()`."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.streams = Streams()
        self.requests = Requests()
        # The recovery event being assembled; kept across a drop until one is complete.
        self.report: Report | None = None
        self.welcome: dict[str, Any] | None = None
        self.connections = 0
        self.live = False

    async def frame(self, ws: ClientConnection, raw: str | bytes) -> None:
        """Handles one frame from the server."""
        try:
            frame = self.client.wire.decode(raw)
        except ValueError as exc:
            log.warning("ignored a frame that is not an event: %s", exc)
            return
        kind = frame["type"]
        if kind == WELCOME:
            await self._welcome(ws, frame.get("data") or {})
        elif kind in ANSWERS and frame.get("id") is not None:
            self.requests.settle(frame)  # an unknown id: a request that timed out
            self._check_report()
        elif kind != "reply":
            self._deliver(frame)

    async def _welcome(self, ws: ClientConnection, data: dict[str, Any]) -> None:
        """Takes the feed's position, re-subscribes every room with its own, and starts the
        report of this (re)connect."""
        self.welcome = data
        self.connections += 1
        self.live = True
        self.streams.feed.answer(data)
        report = self.report or Report()
        self.report = report
        rooms = list(self.client.subscriptions)
        report.expect([FEED, *rooms])
        report.answered(FEED, data)
        # Live from here: a room subscribed from now on sends its own subscribe.
        self.client.link.welcomed(ws)
        for channel in rooms:
            await self.send_subscribe(ws, channel)
        self._check_report()

    async def send_subscribe(self, ws: ClientConnection, channel: str) -> None:
        """Sends a room's subscribe, with its position when it has one."""
        data = {"channel": channel, **self.streams.add(channel).resume()}
        request_id, _ = self.requests.open(
            future=False, on_reply=lambda reply: self._subscribed(channel, reply),
            on_error=lambda code, message: self._refused(channel, code, message))
        try:
            await ws.send(self.client.wire.encode(request_id, "subscribe", data))
        except ConnectionClosed:
            self.requests.forget(request_id)  # the next welcome subscribes it again

    def _subscribed(self, channel: str, reply: dict[str, Any]) -> None:
        subscription = self.client.subscriptions.get(channel)
        stream = self.streams.rooms.get(channel)
        if subscription is None or stream is None:
            return  # left while the subscribe was on its way
        stream.answer(reply)
        subscription.answered(reply)
        if self.report is not None and channel in self.report.expected:
            self.report.answered(channel, reply)

    def _refused(self, channel: str, code: str, message: str) -> None:
        subscription = self.client.subscriptions.pop(channel, None)
        self.streams.rooms.pop(channel, None)
        if subscription is not None:
            subscription.left(RequestError(code, message))
        if self.report is not None and channel in self.report.expected:
            self.report.answered(channel, {}, error=code)

    def forget_room(self, channel: str) -> None:
        """Stops tracking a room the application left."""
        self.streams.rooms.pop(channel, None)
        if self.report is not None:
            self.report.forget(channel)
            self._check_report()

    def _deliver(self, frame: dict[str, Any]) -> None:
        """Queues an event for `events()`, unless it is one already delivered."""
        channel, offset = frame.get("channel"), frame.get("offset")
        if offset is not None:
            stream = self.streams.get(channel)
            if stream is not None and not stream.accept(str(offset)):
                log.warning("dropped a duplicate event: %s offset %s", channel or "feed", offset)
                self._check_report()
                return
        if frame["type"] == "channel.unsubscribed" and channel:
            # Removed from a private room, or the room was deleted: nothing to resubscribe.
            subscription = self.client.subscriptions.pop(channel, None)
            self.forget_room(channel)
            if subscription is not None:
                reason = (frame.get("data") or {}).get("reason", "unsubscribed")
                subscription.left(ConnectionLost(f"{channel}: {reason}"))
        self.client.queue.put_nowait(Event.from_frame(frame))
        if offset is not None:
            self._check_report()

    def _check_report(self) -> None:
        """Queues the `recovery` event once every stream answered and replayed."""
        report = self.report
        if report is not None and self.live and report.complete(self.streams):
            self.report = None
            self.client.queue.put_nowait(report.event())

    def dropped(self, error: BaseException) -> None:
        """Forgets what the closed socket was in the middle of: its requests fail with
        `error` (ConnectionLost, or Revoked), unfinished replays resume from what came."""
        self.live = False
        self.requests.fail_all(error)
        self.streams.interrupted()
