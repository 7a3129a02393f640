"""The /ws event socket: registers with the hub, relays messages (upgrade: wsauth.py)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from tornado.iostream import IOStream

from auth.ratelimit import InboundLimit
from handlers.heartbeat import Heartbeat
from handlers.wsauth import HandshakeMixin
from hub import transport
from hub.client import Client
from hub.disconnect import SHUTTING_DOWN, TOKEN_EXPIRED
from hub.events import JSON, PROTOBUF, Encoded, Event, EventType
from hub.history import Recovery
from hub.messages import FEED
from services.principal import Principal

if TYPE_CHECKING:
    from app import Context

__all__ = ["EventSocketHandler"]

log = logging.getLogger("ws")

WELCOME = "Welcome to WebSocket real-time updates"


class EventSocketHandler(HandshakeMixin):
    """GET /ws: authenticates before the upgrade, then streams the caller's events."""

    def initialize(self, ctx: Context) -> None:
        # Every attribute an upgraded socket will carry is set here, before the first await,
        # Tornado's later ones included (values are placeholders it overwrites). CPython 3.11
        # shares one key table among a class's instance dicts, but each new instance shrinks
        # the room left to add keys to it; a key first set after concurrent handshakes have
        # begun no longer fits, and then every socket gets an unshared dict (~1.3 KiB more).
        self._transforms: list[Any] = []
        self.path_args: list[str] = []
        self.path_kwargs: dict[str, str] = {}
        self.open_args: tuple[Any, ...] = ()
        self.open_kwargs: dict[str, Any] = {}
        self.ctx = ctx
        self.principal: Principal | None = None
        self.client: Client | None = None
        self._expiry: int | None = None  # the heartbeat's key for the token's expiry
        self._limit: InboundLimit | None = None
        # The close code this side sent, if it closed first (Tornado keeps only the peer's).
        self._sent_close: int | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def open(self, head: bytes) -> None:  # type: ignore[override]
        """Sets the upgraded socket up; `head` is the 101 response (handlers/wsframes.py),
        to be written before anything else."""
        caller = self.principal
        assert caller is not None
        if self.ctx.hub.draining:  # shutdown began while this handshake awaited the database
            self.ws_connection.stream.write(head)  # type: ignore[union-attr]
            self.close(*SHUTTING_DOWN)
            return
        self.set_nodelay(True)
        self._cap_send_buffer()
        self.client = Client(self, caller.id, caller.role, caller.session_id,
                             caller.token_version, name=sys.intern(caller.name))
        # Which of an event's shared frames this socket is sent (fixed now), and its stream
        # for the hub's direct path (Client.sock), which opens once the held 101 and welcome
        # are written (write_held).
        self.client.variant = self._wire_variant()
        self.client.stream = self.ws_connection.stream  # type: ignore[union-attr]
        # The 101 response leaves with the welcome, in the iteration's last send() (the hub's
        # WriteBatch holds it and everything sent to this socket until then).
        self.ctx.hub.writes.arm()
        self.client.held, self.client.held_size = [head], len(head)
        self.ctx.hub.writes.add(self.client)
        # The welcome goes first, with the feed position; then the missed feed events (when
        # `since`/`epoch` name a recoverable position); then registering, which announces
        # the user (user.online) to admins. All in this one IOLoop turn, so no live event can
        # come before or between the replayed ones, nor twice.
        since = self.get_query_argument("since", None)
        epoch = self.get_query_argument("epoch", None)
        recovery, missed = self.ctx.hub.recover(self.client, FEED, since, epoch)
        self.send(Event(EventType.CONNECTION_ESTABLISHED, {
            "client_id": self.client.id,
            "message": WELCOME,
            "role": caller.role,
            "user_id": caller.id,
            **recovery.position(len(missed)),
        }).encode())
        for event in missed:
            self.send(event)
        self.ctx.hub.register(self.client)
        self.ctx.metrics.connection_opened()
        self._schedule_expiry(caller.expires_at)
        self._shed_handshake_state()

    @property
    def protobuf(self) -> bool:
        """Whether this connection speaks events.v1.protobuf (binary requests and events)."""
        return self.client is not None and bool(self.client.variant & PROTOBUF)

    def _detach_stream(self) -> IOStream:
        # Tornado also plants seven guard attributes (write, finish, ...) on every handler
        # here, about 1.5 KiB per idle socket; this handler never calls those after the
        # upgrade, so it detaches without them.
        return self.detach()

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Closes the socket, remembering the code for the closed-connections metric."""
        if self._sent_close is None:
            self._sent_close = code
        super().close(code, reason)  # sent events go first (StrictProtocol._write_frame)

    def on_close(self) -> None:
        if self._expiry is not None:
            self.ctx.heartbeat.forget(self, self._expiry)
            self._expiry = None
        if self.client is not None:
            self.client.sock = None
            self.ctx.hub.unregister(self.client)
            self.ctx.metrics.connection_closed(self._sent_close or self.close_code)

    @property
    def heartbeat(self) -> Heartbeat:
        """The application's shared ping wheel, which the protocol joins instead of starting
        a ping task of its own (handlers/wsframes.py start_pinging)."""
        return self.ctx.heartbeat

    def _schedule_expiry(self, exp: int) -> None:
        heartbeat = self.ctx.heartbeat
        if self._expiry is not None:
            heartbeat.forget(self, self._expiry)
        self._expiry = heartbeat.expire(self, exp)

    def token_expired(self) -> None:
        """Closes the socket: its access token has expired (the heartbeat calls it)."""
        self._expiry = None
        self.close(*TOKEN_EXPIRED)

    # -- inbound (services/inbound.py parses and dispatches) -----------------------------

    async def on_message(self, message: str | bytes) -> None:
        outcome = await self.ctx.inbound.handle(self, message)
        # Reply, replayed events and the follow-up (a subscription) run in one IOLoop turn.
        if outcome.replay:
            self.ctx.hub.writes.arm()  # and leave in one send()
        if outcome.reply is not None:
            self.send(outcome.reply.encode())
        for event in outcome.replay:
            self.send(event)
        if outcome.then is not None:
            outcome.then()
        if outcome.close is not None:
            self.close(*outcome.close)

    # The inbound Peer interface: who is on this connection and what it is subscribed to.

    @property
    def limit(self) -> InboundLimit:
        """This connection's inbound budget, made on its first message (most sockets only
        listen, and an idle socket should cost as little as possible)."""
        if self._limit is None:
            settings = self.ctx.settings
            self._limit = InboundLimit(settings.inbound_rate, settings.inbound_burst)
        return self._limit

    @property
    def user_id(self) -> int:
        assert self.client is not None
        return self.client.user_id

    @property
    def name(self) -> str:
        assert self.client is not None
        return self.client.name

    @property
    def role(self) -> str:
        assert self.client is not None
        return self.client.role

    @property
    def channels(self) -> set[str]:
        assert self.client is not None
        return self.client.channels

    def subscribe(self, channel: str) -> bool:
        """Subscribes this connection through the hub."""
        assert self.client is not None
        return self.ctx.hub.subscribe(self.client, channel)

    def recover(self, channel: str, since: object, epoch: object) -> tuple[Recovery, list]:
        """Returns a channel's recovery and the missed events, for a subscription to follow."""
        assert self.client is not None
        return self.ctx.hub.recover(self.client, channel, since, epoch, joining=True)

    def unsubscribe(self, channel: str) -> bool:
        """Unsubscribes this connection through the hub."""
        assert self.client is not None
        return self.ctx.hub.unsubscribe(self.client, channel)

    def rebind(self, principal: Principal) -> None:
        """Moves the connection to a refreshed token's session and expiry."""
        if self.client is not None:
            self.ctx.hub.update_session(self.client, principal.session_id,
                                        principal.token_version)
        self._schedule_expiry(principal.expires_at)

    # -- the hub's Connection interface --------------------------------------------------

    def send(self, event: Encoded) -> bool:
        """Writes the event's shared frame for this connection's variant, or holds it for the
        iteration's last send() once the hub's WriteBatch holds; True if nothing is left
        queued."""
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            return True
        client = self.client
        variant = client.variant if client is not None else JSON
        frame = event.frames[variant] or event.frame_for(variant)
        held = client.held if client is not None else None
        if held is None and (client is None or not self.ctx.hub.writes.holding):
            written = transport.write_frame(conn.stream, frame)  # type: ignore[attr-defined]
            if client is not None:  # the direct path is open while nothing is queued
                client.sock = conn.stream.socket if written else None  # type: ignore[attr-defined]
            return written
        if held is None:
            client.held, client.held_size = [frame], len(frame)
            self.ctx.hub.writes.add(client)
            return True
        held.append(frame)
        client.held_size += len(frame)
        return client.held_size < transport.FLUSH_BYTES or self.write_held()

    def before_frame(self, opcode: int) -> None:
        """Called by the protocol before it writes a frame of its own (pong, ping, close):
        the frames held for the iteration's last send() go first. The hub's direct path
        closes until an event has gone through send() (Tornado's frame may leave bytes
        queued, and after a close frame send() writes nothing)."""
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
        if not held or conn is None:
            return True
        stream = conn.stream  # type: ignore[attr-defined]
        written = transport.write_frames(stream, held)
        client.sock = stream.socket if written and not conn.is_closing() else None
        return written

    def backlog(self) -> tuple[int, int]:
        """Returns (queued messages, unsent bytes) for slow-consumer checks."""
        conn = self.ws_connection
        if conn is None:
            return 0, 0
        return transport.backlog(conn.stream)  # type: ignore[attr-defined]
