"""The hub's record of one connection and the interface a connection offers the hub."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from hub.events import JSON

if TYPE_CHECKING:
    import socket

__all__ = ["Connection", "Client", "GONE", "new_client_id"]


class Connection(Protocol):
    """What the hub needs of a socket: write a frame, report its backlog, close with a code.

    The WebSocket handler (edge/socket.py) and test fakes implement it.
    """

    def write_frame(self, frame: bytes) -> bool:
        """Writes a pre-framed message without waiting; True if nothing is left queued.

        A socket may hold the frame until the end of the IOLoop iteration and then write all
        it holds in one send() (hub/transport.py WriteBatch, which settles it then).
        """

    def write_held(self, last: bool = False) -> bool:
        """Writes what the connection holds now; True if nothing is left queued. `last`: the
        end-of-iteration flush, after which the connection is no longer in the batch."""

    def backlog(self) -> tuple[int, int]:
        """Returns (queued messages, unsent bytes)."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Starts a close handshake with code and reason."""


class _Gone:
    """The connection of a Client whose socket has closed: it writes nothing and holds
    nothing (a verb still running for the closed socket may write its reply)."""

    __slots__ = ()

    def write_frame(self, frame: bytes) -> bool:
        return True

    def write_held(self, last: bool = False) -> bool:
        return True

    def backlog(self) -> tuple[int, int]:
        return 0, 0

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        pass

    def __repr__(self) -> str:
        return "<closed connection>"


GONE: Connection = _Gone()
NO_CHANNELS: frozenset[str] = frozenset()
_IDS_PER_DRAW = 256
_ids: list[str] = []


def new_client_id() -> str:
    """Returns a random version 4 UUID as text, as str(uuid.uuid4()) does.

    Every handshake takes one; uuid4() reads the system's random source and builds a UUID
    object for each, about three times what this costs: 256 ids are drawn from os.urandom at
    once and formatted together. (Workers are separate processes, never forks sharing ids.)
    """
    if not _ids:
        raw = bytearray(os.urandom(16 * _IDS_PER_DRAW))
        raw[6::16] = bytes(b & 0x0F | 0x40 for b in raw[6::16])  # the version, 4
        raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # the RFC 4122 variant
        h = raw.hex()
        _ids.extend(f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-"
                    f"{h[i + 20:i + 32]}" for i in range(0, len(h), 32))
    return _ids.pop()


class Client:
    """One registered connection: who it belongs to and which session and role it carries."""

    __slots__ = ("id", "conn", "user_id", "role", "session_id", "token_version", "name",
                 "channels", "held", "held_size", "sock", "variant", "external_id")

    def __init__(
        self,
        conn: Connection,
        user_id: int,
        role: str,
        session_id: str = "",
        token_version: int = 0,
        client_id: str | None = None,
        name: str = "",
        external_id: str | None = None,
    ) -> None:
        self.id = client_id or new_client_id()
        self.conn = conn
        self.user_id = user_id
        self.role = role
        self.session_id = session_id
        self.token_version = token_version
        self.name = name
        # The identity provider's subject of a user signed in there (None: a local account).
        self.external_id = external_id
        # The channels this connection is subscribed to (the hub keeps it in step). Shared
        # and empty until the first subscribe: most sockets never join a room.
        self.channels: set[str] | frozenset[str] = NO_CHANNELS
        # Frames the socket holds for the end of this IOLoop iteration and their bytes (kept
        # here, not on the socket handler, to cost an idle socket two slots); None when the
        # connection is not in this iteration's WriteBatch (hub/transport.py).
        self.held: list[bytes] | None = None
        self.held_size = 0
        # The direct path (hub/transport.py write_direct), which the first fan-out of an
        # IOLoop iteration takes: `sock` is the connection's socket while nothing is queued
        # on it and no close frame has gone out, else None (the connection keeps it in
        # step). With `sock` None every frame goes through conn.write_frame() (test fakes
        # always),
        # which checks the queue and the close itself.
        self.sock: socket.socket | None = None
        # Which of an event's shared frames this connection is sent (hub.events JSON,
        # DEFLATE, PROTOBUF flags), fixed when it opens.
        self.variant = JSON

    def __repr__(self) -> str:
        return f"<Client {self.id} user={self.user_id} role={self.role}>"

    def detach(self) -> None:
        """Forgets the connection once its socket has closed and the hub has let it go.

        The socket handler and its Client refer to each other; left linked, a closed
        connection's objects (handler, request, stream, protocol) form a reference cycle that
        only a full garbage collection frees, and a full collection walks every live object
        with the event loop held (35-80 ms at 2,000 sockets). Unlinked, they are freed as the
        socket closes.
        """
        self.conn = GONE
        self.sock = None
        self.held, self.held_size = None, 0
