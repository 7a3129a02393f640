"""The hub's Connection interface on a Tornado WebSocket handler: write a frame, backlog, close.

`HubSocket` is what the hub writes through when it does not send on the socket itself (the
direct path, hub/transport.py): frames of later fan-outs in an IOLoop iteration, which it
holds for one send() at the iteration's end, and anything written while bytes are queued.
It keeps the hub's `Client.sock` in step: set while nothing is queued on the stream and no
close frame has gone out, else None.
"""

from __future__ import annotations

from tornado.websocket import WebSocketHandler

from edge import internals
from hub.client import Client
from hub.events import JSON, Encoded
from hub.transport import FLUSH_BYTES, WriteBatch

__all__ = ["HubSocket"]


class HubSocket(WebSocketHandler):
    """A WebSocket handler the hub can write to; the subclass sets `client` and `writes`."""

    client: Client | None

    @property
    def writes(self) -> WriteBatch:
        """The hub's batch of frames held until the end of the IOLoop iteration."""
        raise NotImplementedError

    def send(self, event: Encoded) -> bool:
        """Writes the event's shared frame for this connection's variant (see write_frame())."""
        client = self.client
        variant = client.variant if client is not None else JSON
        return self.write_frame(event.frames[variant] or event.frame_for(variant))

    def write_frame(self, frame: bytes) -> bool:
        """Writes a frame, or holds it for the iteration's last send() once the hub's
        WriteBatch holds; True if nothing is left queued."""
        conn = self.ws_connection
        if conn is None or conn.is_closing() or conn.stream is None:
            return True
        client = self.client
        if client is None or (client.held is None and not self.writes.holding):
            stream = conn.stream
            written = internals.write_frame(stream, frame)
            if client is not None:  # the direct path is open while nothing is queued
                client.sock = stream.socket if written else None
            return written
        held = client.held
        if held is None:
            client.held, client.held_size = [frame], len(frame)
            self.writes.add(client)
            return True
        held.append(frame)
        client.held_size += len(frame)
        return client.held_size < FLUSH_BYTES or self.write_held()

    def before_frame(self, opcode: int) -> None:
        """Called by the protocol before it writes a frame of its own (pong, ping, close):
        the frames held for the iteration's last send() go first. The hub's direct path
        closes until an event has gone through write_frame() (Tornado's frame may leave bytes
        queued, and after a close frame write_frame() writes nothing)."""
        client = self.client
        if client is None:
            return
        if client.held:
            self.write_held()
        client.sock = None

    def write_held(self, last: bool = False) -> bool:
        """Writes the held frames in one send(); True if nothing is left queued."""
        client = self.client
        if client is None:
            return True
        held = client.held
        client.held, client.held_size = (None if last else []), 0
        conn = self.ws_connection
        if not held or conn is None or conn.stream is None:
            return True
        stream = conn.stream
        written = internals.write_frames(stream, held)
        client.sock = stream.socket if written and not conn.is_closing() else None
        return written

    def backlog(self) -> tuple[int, int]:
        """Returns (queued messages, unsent bytes) for slow-consumer checks."""
        conn = self.ws_connection
        if conn is None or conn.stream is None:
            return 0, 0
        return internals.backlog(conn.stream)
