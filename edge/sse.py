"""Server-Sent Events as the hub's second transport: a detached HTTP response the hub writes to.

An SSE stream is an HTTP response that never ends: `retry:`, then events, each
`id: <cursor>\nevent: <type>\ndata: <JSON envelope>\n\n`, and a `: ping` comment now and then
so proxies keep it open. The hub delivers to it exactly as to a WebSocket: the event is
encoded once for every SSE recipient (hub.events SSE variant: its stream's own position as
the id), through the same fan-out, slow-consumer limits and recovery.

The cursor. A browser's EventSource sends back only the last id it saw, so the id must hold
the position of every stream the connection follows: `<feed epoch>:<offset>`, then
`,<room>=<epoch>:<offset>` per room (opaque to clients). For a connection that follows only
the feed (most listeners) that is exactly the shared frame's id: the bytes go out as they are,
on the hub's direct path. A connection that follows rooms rewrites each id line into its
composite cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.iostream import IOStream

from edge import internals
from hub.client import Client
from hub.disconnect import TOKEN_EXPIRED
from hub.events import SSE, Encoded, dumps
from hub.transport import FLUSH_BYTES, WriteBatch

__all__ = ["SseConnection", "SsePinger", "parse_cursor", "RETRY_MS", "PING"]

log = logging.getLogger("sse")

RETRY_MS = 2000  # how long EventSource waits before reconnecting
PING = b": ping\n\n"
CLOSE_GRACE = 1.0  # seconds a closing stream may take to write its last bytes
MAX_CURSOR = 8192


def parse_cursor(text: str | None) -> tuple[tuple[str, str] | None, dict[str, tuple[str, str]]]:
    """Returns (feed position, {room channel: position}) from a cursor; positions are
    (epoch, offset) strings. Garbage gives nothing for the streams it does not name."""
    feed: tuple[str, str] | None = None
    rooms: dict[str, tuple[str, str]] = {}
    if not text or len(text) > MAX_CURSOR:
        return feed, rooms
    head, *parts = text.split(",")
    epoch, sep, offset = head.partition(":")
    if sep and epoch and offset.isdigit():
        feed = (epoch, offset)
    for part in parts:
        name, eq, position = part.partition("=")
        epoch, sep, offset = position.partition(":")
        if eq and sep and name and epoch and offset.isdigit():
            rooms[f"room:{name}"] = (epoch, offset)
    return feed, rooms


class SseConnection:
    """One SSE stream: the hub's Connection interface (write a frame, write what is held,
    backlog, close with a code) over a detached IOStream, plus the connection's cursor."""

    __slots__ = ("stream", "client", "writes", "feed", "rooms", "suffix", "closing", "code",
                 "reason", "on_closed", "expiry")

    def __init__(self, stream: IOStream, writes: WriteBatch) -> None:
        self.stream = stream
        self.client: Client | None = None
        self.writes = writes
        self.feed = ""  # the feed's part of the cursor
        self.rooms: dict[str, str] = {}  # room name -> its part of the cursor
        self.suffix = ""  # the rooms' parts, joined in subscription order
        self.closing = False
        self.code: int | None = None  # the code close() ended the stream with
        self.reason: str | None = None  # and its reason
        self.on_closed: Callable[[SseConnection], None] | None = None
        self.expiry: int | None = None  # the heartbeat's key for the token's expiry
        stream.set_close_callback(self._closed)

    @property
    def cursor(self) -> str:
        """The connection's position in every stream it follows."""
        return self.feed + self.suffix

    def follow(self, feed: str, rooms: dict[str, str]) -> None:
        """Sets the cursor's starting parts (from the feed's and each room's recovery)."""
        self.feed = feed
        self.rooms = dict(rooms)
        self.suffix = "".join(self.rooms.values())

    # -- the hub's Connection interface --------------------------------------------------

    def send(self, event: Encoded) -> bool:
        """Writes an event's SSE frame (see write_frame)."""
        return self.write_frame(event.frames[SSE] or event.frame_for(SSE))

    def write_frame(self, frame: bytes) -> bool:
        """Writes a frame with its id rewritten into this connection's cursor, or holds it for
        the iteration's last send() once the hub's WriteBatch holds; True if nothing is left
        queued."""
        if frame[:4] == b"id: ":
            frame = self._with_cursor(frame)
        return self.write_own(frame)

    def write_own(self, frame: bytes) -> bool:
        """Writes bytes of the connection's own (the head, the welcome, a ping) as they are."""
        if self.closing or self.stream.closed():
            return True
        client = self.client
        if client is None or (client.held is None and not self.writes.holding):
            written = internals.write_frame(self.stream, frame)
            if client is not None:  # the direct path: the shared frames fit as they are
                client.sock = self.stream.socket if written and not self.rooms else None
            return written
        held = client.held
        if held is None:
            client.held, client.held_size = [frame], len(frame)
            self.writes.add(client)
            return True
        held.append(frame)
        client.held_size += len(frame)
        return client.held_size < FLUSH_BYTES or self.write_held()

    def _with_cursor(self, frame: bytes) -> bytes:
        """Records the frame's stream position and returns it with the composite cursor."""
        end = frame.index(b"\n")
        part = frame[4:end].decode("utf-8")
        if part[0] == ",":
            name = part[1:part.index("=")]
            self.rooms[name] = part
            self.suffix = "".join(self.rooms.values())
        else:
            self.feed = part
            if not self.rooms:
                return frame
        return b"id: " + (self.feed + self.suffix).encode("utf-8") + frame[end:]

    def write_held(self, last: bool = False) -> bool:
        """Writes the held frames in one send(); True if nothing is left queued."""
        client = self.client
        if client is None:
            return True
        held = client.held
        client.held, client.held_size = (None if last else []), 0
        if not held or self.closing or self.stream.closed():
            return True
        written = internals.write_frames(self.stream, held)
        client.sock = self.stream.socket if written and not self.rooms else None
        return written

    def backlog(self) -> tuple[int, int]:
        """Returns (queued messages, unsent bytes) for slow-consumer checks."""
        return internals.backlog(self.stream)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Ends the stream: a last `close` event with the code and reason (what a WebSocket
        would be told), then the connection, once its bytes are written (or after a second)."""
        if self.closing:
            return
        self.code, self.reason = code, reason
        client = self.client
        if client is not None:
            if client.held:
                self.write_held()
            client.sock = None
        if code is not None and not self.stream.closed():
            body = dumps({"type": "close", "data": {"code": code, "reason": reason or ""}})
            internals.write_frame(self.stream, b"event: close\ndata: " + body.encode() + b"\n\n")
        self.closing = True
        if self.stream.closed():
            return
        if internals.backlog(self.stream) == (0, 0):
            self.stream.close()
            return
        self.stream.write(b"").add_done_callback(lambda _: self.stream.close())
        IOLoop.current().call_later(CLOSE_GRACE, self.stream.close)

    def token_expired(self) -> None:
        """Ends the stream: its access token has expired (the heartbeat calls it)."""
        self.expiry = None
        self.close(*TOKEN_EXPIRED)

    def _closed(self) -> None:
        self.closing = True
        if self.client is not None:
            self.client.sock = None
        if self.on_closed is not None:
            self.on_closed(self)


class SsePinger:
    """Writes a `: ping` comment to every SSE stream every interval, on one timer: proxies keep
    the stream open, and a client that is gone is found by the failed write."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.streams: set[SseConnection] = set()
        self._timer: PeriodicCallback | None = None

    def add(self, conn: SseConnection) -> None:
        """Pings conn from now on."""
        self.streams.add(conn)
        if self._timer is None:
            self._timer = PeriodicCallback(self.ping, self.interval * 1000)
            self._timer.start()

    def discard(self, conn: SseConnection) -> None:
        """Stops pinging conn (it closed)."""
        self.streams.discard(conn)
        if not self.streams and self._timer is not None:
            self._timer.stop()
            self._timer = None

    def ping(self) -> None:
        """Writes the comment to every stream."""
        for conn in list(self.streams):
            try:
                conn.write_own(PING)
            except Exception:  # one broken stream must not stop the others
                log.exception("ping failed")
