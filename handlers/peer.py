"""The inbound Peer interface of a socket: who is on it and what it is subscribed to.

services/inbound.py dispatches a connection's requests against this interface; the socket
handler (handlers/ws.py) mixes it in over its hub Client record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auth.ratelimit import InboundLimit
from hub.client import Client
from hub.history import Recovery
from services.hooks import HookUser

if TYPE_CHECKING:
    from context import Context

__all__ = ["HubPeer"]


class HubPeer:
    """Answers the inbound dispatcher from the connection's Client record and the hub."""

    ctx: Context
    client: Client | None
    _limit: InboundLimit | None
    # How this connection is served, as the permission hooks and webhooks name it.
    transport = "websocket"

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
    def client_id(self) -> str:
        assert self.client is not None
        return self.client.id

    @property
    def caller(self) -> HookUser:
        """Who is on this connection, for the permission hooks."""
        client = self.client
        assert client is not None
        return HookUser(client.user_id, client.name, client.role, client.external_id)

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
