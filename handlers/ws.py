"""The /ws event socket: registers with the hub, relays messages (upgrade: wsauth.py)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from auth.ratelimit import InboundLimit
from edge import internals
from edge.connection import HubSocket
from edge.heartbeat import Heartbeat
from handlers.peer import HubPeer
from handlers.wsauth import HandshakeMixin
from hub.client import Client
from hub.disconnect import SHUTTING_DOWN, TOKEN_EXPIRED
from hub.events import PROTOBUF, Event, EventType
from hub.messages import FEED
from hub.transport import WriteBatch
from services.principal import Principal

if TYPE_CHECKING:
    from context import Context

__all__ = ["EventSocketHandler"]

log = logging.getLogger("ws")

WELCOME = "Welcome to WebSocket real-time updates"
_NO_PATH_ARGS: list[str] = []
_NO_KWARGS: dict[str, Any] = {}


class EventSocketHandler(HandshakeMixin, HubPeer, HubSocket):
    """GET /ws: authenticates before the upgrade, then streams the caller's events."""

    def initialize(self, ctx: Context) -> None:
        # Every attribute an upgraded socket will carry is set here, before the first await,
        # Tornado's later ones included (values are placeholders it overwrites). CPython 3.11
        # shares one key table among a class's instance dicts, but each new instance shrinks
        # the room left to add keys to it; a key first set after concurrent handshakes have
        # begun no longer fits, and then every socket gets an unshared dict (~1.3 KiB more).
        internals.preset_handler(self)
        self.path_args: list[str] = _NO_PATH_ARGS  # never mutated: shared, as are the next
        self.path_kwargs: dict[str, str] = _NO_KWARGS
        self.open_args: tuple[Any, ...] = ()
        self.open_kwargs: dict[str, Any] = _NO_KWARGS
        self.ctx = ctx
        self.principal: Principal | None = None
        self.client: Client | None = None
        self._expiry: int | None = None  # the heartbeat's key for the token's expiry
        self._limit: InboundLimit | None = None
        # The close code and reason this side sent, if it closed first (Tornado keeps only
        # the peer's).
        self._sent_close: tuple[int | None, str | None] | None = None
        self._client_id: str | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def open(self, head: bytes) -> None:  # type: ignore[override]
        """Sets the upgraded socket up; `head` is the 101 response (edge/protocol.py), to be
        written before anything else."""
        caller = self.principal
        assert caller is not None
        if self.ctx.hub.draining:  # shutdown began while this handshake awaited the database
            self.write_frame(head)
            self.close(*SHUTTING_DOWN)
            return
        self._send_at_once()
        self.client = Client(self, caller.id, caller.role, caller.session_id,
                             caller.token_version, client_id=self._client_id,
                             name=sys.intern(caller.name), external_id=caller.external_id)
        # Which of an event's shared frames this socket is sent (fixed now); the hub's direct
        # path (Client.sock) opens once the held 101 and welcome are written (write_held).
        self.client.variant = self._wire_variant()
        # The 101 response leaves with the welcome, in the iteration's last send() (the hub's
        # WriteBatch holds it and everything sent to this socket until then).
        self.ctx.hub.writes.arm()
        self.client.held, self.client.held_size = [head], len(head)
        self.ctx.hub.writes.add(self.client)
        # The welcome goes first, with the feed position; then the missed feed events; then
        # registering, which announces the user (user.online) to admins. All in this one
        # IOLoop turn, so no live event can come before or between the replayed ones, nor twice.
        self.greet(caller)
        self.ctx.hub.register(self.client)
        self.ctx.metrics.connection_opened()
        self.ctx.webhooks.connection_opened(self.client, self.transport)
        self._schedule_expiry(caller.expires_at)
        self._shed_handshake_state()

    def greet(self, caller: Principal) -> None:
        """Sends the welcome with the feed position, then the feed events missed since the
        position `since`/`epoch` name, when it is recoverable."""
        assert self.client is not None
        since, epoch = self.query("since"), self.query("epoch")
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

    @property
    def protobuf(self) -> bool:
        """Whether this connection speaks events.v1.protobuf (binary requests and events)."""
        return self.client is not None and bool(self.client.variant & PROTOBUF)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Closes the socket, remembering the code for the closed-connections metric (and the
        reason for the connection.closed webhook)."""
        if self._sent_close is None:
            self._sent_close = (code, reason)
        super().close(code, reason)  # sent events go first (before_frame)

    def on_close(self) -> None:
        if self._expiry is not None:
            self.ctx.heartbeat.forget(self, self._expiry)
            self._expiry = None
        if self.client is not None:
            self.ctx.hub.unregister(self.client)
            sent = self._sent_close
            code, reason = (sent if sent is not None and sent[0] is not None
                            else (self.close_code, self.close_reason))
            self.ctx.metrics.connection_closed(code)
            self.ctx.webhooks.connection_closed(self.client, self.transport, code, reason)
            self.client.detach()

    @property
    def heartbeat(self) -> Heartbeat:
        """The application's shared ping wheel, which the protocol joins instead of starting
        a ping task of its own (edge/protocol.py start_pinging)."""
        return self.ctx.heartbeat

    @property
    def writes(self) -> WriteBatch:
        """The hub's batch of frames held until the end of the IOLoop iteration."""
        return self.ctx.hub.writes

    def _schedule_expiry(self, exp: int) -> None:
        heartbeat = self.ctx.heartbeat
        if self._expiry is not None:
            heartbeat.forget(self, self._expiry)
        self._expiry = heartbeat.expire(self, exp)

    def token_expired(self) -> None:
        """Closes the socket: its access token has expired (the heartbeat calls it)."""
        self._expiry = None
        self.close(*TOKEN_EXPIRED)

    # -- inbound (services/inbound.py parses and dispatches; handlers/peer.py answers who
    # is on this connection) --------------------------------------------------------------

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

    def rebind(self, principal: Principal) -> None:
        """Moves the connection to a refreshed token's session and expiry."""
        if self.client is not None:
            self.ctx.hub.update_session(self.client, principal.session_id,
                                        principal.token_version)
        self._schedule_expiry(principal.expires_at)
