"""Writes pre-framed WebSocket messages to a Tornado stream, the fan-out's hot path."""

from __future__ import annotations

from tornado.iostream import IOStream

__all__ = ["write_frame", "backlog"]


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
