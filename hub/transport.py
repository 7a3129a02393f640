"""Writes pre-framed WebSocket messages to a Tornado stream, the fan-out's hot path."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import tornado
import tornado.httputil
import tornado.util
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from tornado.web import RequestHandler
from tornado.websocket import WebSocketHandler, WebSocketProtocol13

if TYPE_CHECKING:
    from hub.client import Client

__all__ = ["write_frame", "write_frames", "write_direct", "backlog", "WriteBatch", "FLUSH_BYTES",
           "check_tornado_internals", "STREAM_INTERNALS"]

# A connection's held frames are written as soon as they reach this many bytes, before the
# end of the IOLoop iteration: one send() of at most about this much.
FLUSH_BYTES = 64 * 1024

# IOStream attributes the fast path reads, and the read buffer handlers/upgrade.py gives a
# request head back through; private to Tornado, so checked at start-up.
STREAM_INTERNALS = ("_total_write_index", "_total_write_done_index", "_write_futures", "socket",
                    "_read_buffer", "_read_buffer_size")
# Handler methods handlers/ws.py overrides or calls to shed per-socket state after the upgrade,
# and what handlers/wsframes.py's buffered frame reader, deflate handshake and 101 response
# build on.
HANDLER_INTERNALS = ((WebSocketHandler, "_detach_stream"), (RequestHandler, "detach"),
                     (RequestHandler, "_log"),
                     (WebSocketProtocol13, "_read_bytes"), (WebSocketProtocol13, "_receive_frame"),
                     (WebSocketProtocol13, "_handle_message"), (tornado.util, "_websocket_mask"),
                     (WebSocketProtocol13, "_parse_extensions_header"),
                     (WebSocketProtocol13, "_challenge_response"),
                     (WebSocketProtocol13, "_create_compressors"),
                     (WebSocketProtocol13, "_write_frame"),
                     (WebSocketProtocol13, "_receive_frame_loop"),
                     (WebSocketProtocol13, "start_pinging"), (WebSocketProtocol13, "write_ping"),
                     (tornado.httputil, "_encode_header"))


def write_frame(stream: IOStream, frame: bytes) -> bool:
    """Sends frame without waiting: straight to the socket when nothing is queued, else queued.

    A direct non-blocking send skips IOStream's per-write Future and bookkeeping, which is most
    of the cost of a fan-out. It is only safe when the stream's own buffer is empty, so bytes
    never overtake earlier ones; whatever the kernel does not take is queued on the stream.
    Errors close the stream, whose close callback unregisters the connection. Returns True
    when the frame went straight to the kernel, False when bytes were left queued (or the
    stream is closed), so the caller checks the backlog only then.
    """
    if stream.closed():
        return False
    if stream._total_write_index == stream._total_write_done_index:
        try:
            sent = stream.socket.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            stream.close(exc_info=exc)
            return False
        if sent == len(frame):
            return True
        frame = frame[sent:]
    stream.write(frame)
    return False


def write_frames(stream: IOStream, frames: list[bytes]) -> bool:
    """Sends several frames in one send() when nothing is queued; returns as write_frame does.

    Whatever the kernel does not take is queued frame by frame (the rest of a frame cut in
    the middle, then each whole frame), so the stream's queued writes still count messages.
    """
    if len(frames) == 1:
        return write_frame(stream, frames[0])
    if stream.closed():
        return False
    if stream._total_write_index == stream._total_write_done_index:
        data = b"".join(frames)
        try:
            sent = stream.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            stream.close(exc_info=exc)
            return False
        if sent == len(data):
            return True
        i = 0
        while sent >= len(frames[i]):
            sent -= len(frames[i])
            i += 1
        if sent:
            stream.write(frames[i][sent:])
            i += 1
        frames = frames[i:]
    for frame in frames:
        stream.write(frame)
    return False


def write_direct(client: Client, frame: bytes) -> bool:
    """Sends frame on client.sock, which the caller found set: nothing is queued on the
    stream and the socket is not closing, so no check of the stream is needed and neither
    the stream nor the socket handler is touched (at 10k sockets each object a delivery
    touches is likely a cache miss). True if the kernel took the whole frame. Otherwise the
    rest is queued on client.stream (or the stream is closed, on an error), client.sock is
    cleared, so the connection's next frames go through its send() until the queue is
    written, and False is returned for the caller to check the backlog.
    """
    try:
        sent = client.sock.send(frame)  # type: ignore[union-attr]
    except BlockingIOError:
        sent = 0
    except OSError as exc:
        client.sock = None
        client.stream.close(exc_info=exc)  # type: ignore[union-attr]
        return False
    if sent == len(frame):
        return True
    client.sock = None
    client.stream.write(frame[sent:] if sent else frame)  # type: ignore[union-attr]
    return False


class WriteBatch:
    """Holds writes for the rest of an IOLoop iteration once it has seen a fan-out.

    The first fan-out of an iteration is written at once, one send() per socket, so a lone
    event costs what it did before (holding every event measured about 0.9 us more per
    delivery). `arm()` then schedules one flush with `IOLoop.add_callback`, and every later
    frame of the iteration is held per socket: its first held frame adds the socket here,
    and the flush writes each socket's frames concatenated in one send(). The callback runs
    after the callbacks already queued, before the loop waits for I/O again, so nothing
    waits past the current iteration. A burst of K events to N sockets thus costs about 2N
    sends instead of K x N.
    """

    def __init__(self, settle: Callable[[Client], object]) -> None:
        self._held: list[Client] = []
        # True from the first fan-out of an iteration until its flush: sockets hold frames.
        self.holding = False
        # Called with a connection's client when its flush left bytes queued (the hub checks
        # its backlog against the slow-consumer limits).
        self._settle = settle
        self.flushes = 0  # end-of-iteration flushes run so far

    def arm(self) -> None:
        """Holds every later frame of this IOLoop iteration for one send() per socket."""
        if not self.holding:
            self.holding = True
            IOLoop.current().add_callback(self.flush)

    def add(self, client: Client) -> None:
        """Writes client's held frames at the end of this IOLoop iteration."""
        self._held.append(client)

    def flush(self) -> None:
        """Writes every held connection's frames, one send() each, in the order they came."""
        self.holding = False
        held, self._held = self._held, []
        self.flushes += 1
        settle = self._settle
        for client in held:
            if not client.conn.write_held(True):
                settle(client)


def backlog(stream: IOStream) -> tuple[int, int]:
    """Returns (queued writes, unsent bytes) still waiting in the stream's buffer."""
    return len(stream._write_futures), stream._total_write_index - stream._total_write_done_index


def check_tornado_internals() -> None:
    """Fails at start-up, naming the Tornado version, if the fast path's internals are gone."""
    missing = [f"{owner.__name__}.{name}" for owner, name in HANDLER_INTERNALS
               if not callable(getattr(owner, name, None))]
    left, right = socket.socketpair()
    try:
        stream = IOStream(left)
        missing += [f"IOStream.{name}" for name in STREAM_INTERNALS if not hasattr(stream, name)]
    finally:
        left.close()
        right.close()
    if missing:
        raise RuntimeError(
            f"Tornado {tornado.version} lacks {', '.join(missing)}, which the WebSocket fast "
            "path (hub/transport.py, handlers/ws.py) relies on; install a Tornado from "
            "requirements.txt (6.6.x)"
        )
