"""Live consequences (controls) and room events, published straight through the hub.

Feed events are built by hub/feed.py inside the service's transaction and published by the
outbox relay (services/outbox.py); what is here is either a control or a room event.
"""

from __future__ import annotations

from typing import Any

from hub.disconnect import ACCOUNT_DELETED, SESSION_REVOKED
from hub.events import Event, EventType
from hub.hub import Hub
from hub.messages import (
    CloseSession,
    CloseUser,
    SetRole,
    ToChannel,
    Unsubscribe,
)

__all__ = ["HubNotifier"]


class HubNotifier:
    """Applies live consequences on every node and publishes room messages."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def set_role(self, user_id: int, new_role: str) -> int:
        """Re-indexes the user's open connections under their new role (on every node)."""
        return self.hub.control(SetRole(user_id, new_role))

    def close_older_sessions(self, user_id: int, token_version: int) -> int:
        """Closes the user's connections opened with credentials older than token_version."""
        return self.hub.control(CloseUser(user_id, SESSION_REVOKED, below_version=token_version))

    def close_user(self, user_id: int) -> int:
        """Closes every connection of a deleted account."""
        return self.hub.control(CloseUser(user_id, ACCOUNT_DELETED))

    def session_revoked(self, session_id: str) -> int:
        """Closes every connection opened with a token of a revoked session."""
        return self.hub.control(CloseSession(session_id, SESSION_REVOKED))

    async def channel_message(self, channel: str, data: dict[str, Any]) -> str:
        """Logs a room message in its channel's stream and sends it to every subscriber, the
        sender included; returns its offset (StreamUnavailable if it cannot be numbered)."""
        event = Event(EventType.CHANNEL_MESSAGE, data, channel=channel)
        hub = self.hub
        if not hub.broker.deferred:  # numbered and delivered right here, nothing to wait for
            hub.publish(event, (ToChannel(channel),), logged=True)
            return hub.broker.log.position(channel)[1]
        offset, _ = await hub.publish_logged(event, (ToChannel(channel),), data.get("id"))
        return offset

    def room_unsubscribed(self, channel: str, reason: str, user_id: int | None = None) -> int:
        """Unsubscribes a room's sockets (or one user's) on every node, telling them why."""
        return self.hub.control(Unsubscribe(channel, reason, user_id))

    def room_counts(self, channel: str) -> dict[str, int]:
        """Returns a room's live subscriber connections and users online in it."""
        return {"subscribers": self.hub.subscriber_count(channel),
                "online": len(self.hub.presence.members(channel))}
