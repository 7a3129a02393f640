"""Writes pre-framed WebSocket messages to a Tornado stream, the fan-out's hot path."""

from __future__ import annotations

import socket

import tornado
import tornado.util
from tornado.iostream import IOStream
from tornado.web import RequestHandler
from tornado.websocket import WebSocketHandler, WebSocketProtocol13

__all__ = ["write_frame", "backlog", "check_tornado_internals", "STREAM_INTERNALS"]

# IOStream attributes the fast path reads; private to Tornado, so checked at start-up.
STREAM_INTERNALS = ("_total_write_index", "_total_write_done_index", "_write_futures", "socket")
# Handler methods handlers/ws.py overrides or calls to shed per-socket state after the upgrade,
# and what handlers/wsframes.py's buffered frame reader and deflate handshake build on.
HANDLER_INTERNALS = ((WebSocketHandler, "_detach_stream"), (RequestHandler, "detach"),
                     (WebSocketProtocol13, "_read_bytes"), (WebSocketProtocol13, "_receive_frame"),
                     (WebSocketProtocol13, "_handle_message"), (tornado.util, "_websocket_mask"),
                     (WebSocketProtocol13, "_parse_extensions_header"))


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
