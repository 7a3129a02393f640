"""The fan-out's writes: the direct send of the first fan-out of an IOLoop iteration, and
the batch that holds every later one for one send() per socket at the iteration's end."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tornado.ioloop import IOLoop

if TYPE_CHECKING:
    import socket

    from hub.client import Client

__all__ = ["write_direct", "WriteBatch", "FLUSH_BYTES"]

# A connection's held frames are written as soon as they reach this many bytes, before the
# end of the IOLoop iteration: one send() of at most about this much.
FLUSH_BYTES = 64 * 1024


def write_direct(client: Client, sock: socket.socket, frame: bytes) -> bool:
    """Sends frame on sock, the client's socket, which the caller found set in client.sock:
    nothing is queued on the connection and it is not closing, so nothing else is checked
    and the connection's own objects are not touched (at 10k sockets each object a delivery
    touches is likely a cache miss). True if the kernel took the whole frame. Otherwise
    client.sock is cleared, so the connection's next frames go through its write_frame() until
    its queue is written, and the rest of the frame goes through write_frame() now (which queues it,
    or closes the connection on a socket error); its answer is returned.
    """
    try:
        sent = sock.send(frame)
    except OSError:  # EAGAIN, or an error the connection's write_frame() meets again and closes on
        sent = 0
    if sent == len(frame):
        return True
    client.sock = None
    return client.conn.write_frame(frame[sent:] if sent else frame)


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
