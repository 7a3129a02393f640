"""The seed's Notify* helpers: publish feed events and apply live consequences (controls).

Building a feed event (hub/feed.py) is separate from publishing it, so the outbox relay can
publish stored rows; controls and room events are published here directly.
"""

from __future__ import annotations

from typing import Any

from hub import feed
from hub.disconnect import ACCOUNT_DELETED, SESSION_REVOKED
from hub.events import Event, EventType, now_rfc3339
from hub.feed import FeedEvent
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
    """Publishes each domain change to exactly its audience and applies live consequences."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def publish_feed(self, events: list[FeedEvent], timestamp: str | None = None) -> int:
        """Logs and publishes feed events in order; returns the first one's local recipients."""
        counts = [self.hub.publish(Event(e.type, e.data, timestamp or now_rfc3339()),
                                   e.targets, logged=True) for e in events]
        return counts[0] if counts else 0

    def user_created(self, user: dict[str, Any]) -> int:
        """Tells admins a user registered."""
        return self.publish_feed(feed.user_created(user))

    def user_updated(
        self, user_id: int, changes: list[str], updated_at: str, by_self: bool
    ) -> int:
        """Tells the user and admins what changed; profile.updated too if the user did it."""
        return self.publish_feed(feed.user_updated(user_id, changes, updated_at, by_self))

    def set_role(self, user_id: int, new_role: str) -> int:
        """Re-indexes the user's open connections under their new role (on every node)."""
        return self.hub.control(SetRole(user_id, new_role))

    def role_changed(
        self, user_id: int, old_role: str, new_role: str, changed_by: int, changed_at: str
    ) -> int:
        """Re-indexes the user's open connections, then tells the user and admins."""
        self.set_role(user_id, new_role)
        return self.publish_feed(
            feed.role_changed(user_id, old_role, new_role, changed_by, changed_at))

    def close_older_sessions(self, user_id: int, token_version: int) -> int:
        """Closes the user's connections opened with credentials older than token_version."""
        return self.hub.control(CloseUser(user_id, SESSION_REVOKED, below_version=token_version))

    def password_changed(self, user_id: int, token_version: int) -> int:
        """Tells the user, then closes their connections opened with older credentials."""
        sent = self.publish_feed(feed.password_changed(user_id))
        self.close_older_sessions(user_id, token_version)
        return sent

    def close_user(self, user_id: int) -> int:
        """Closes every connection of a deleted account."""
        return self.hub.control(CloseUser(user_id, ACCOUNT_DELETED))

    def user_deleted(self, user: dict[str, Any], deleted_by: int) -> int:
        """Closes the deleted user's connections, then tells admins."""
        self.close_user(user["id"])
        return self.publish_feed(feed.user_deleted(user, deleted_by))

    def session_revoked(self, session_id: str) -> int:
        """Closes every connection opened with a token of a revoked session."""
        return self.hub.control(CloseSession(session_id, SESSION_REVOKED))

    def system_alert(
        self, message: str, priority: str, metadata: dict[str, Any], sent_by: int
    ) -> int:
        """Sends an alert to every connection; returns how many received it."""
        return self.publish_feed(feed.system_alert(message, priority, metadata, sent_by))

    def health_changed(self, status: str, previous: str, checks: dict[str, str]) -> int:
        """Tells admins the health status flipped."""
        return self.publish_feed(feed.health_changed(status, previous, checks))

    def channel_message(self, channel: str, data: dict[str, Any]) -> str:
        """Logs a room message in its channel's stream and sends it to every subscriber, the
        sender included; returns its offset."""
        event = Event(EventType.CHANNEL_MESSAGE, data, channel=channel)
        self.hub.publish(event, (ToChannel(channel),), logged=True)
        return self.hub.broker.log.position(channel)[1]

    def room_unsubscribed(self, channel: str, reason: str, user_id: int | None = None) -> int:
        """Unsubscribes a room's sockets (or one user's) on every node, telling them why."""
        return self.hub.control(Unsubscribe(channel, reason, user_id))

    def room_counts(self, channel: str) -> dict[str, int]:
        """Returns a room's live subscriber connections and users online in it."""
        return {"subscribers": self.hub.subscriber_count(channel),
                "online": len(self.hub.presence.members(channel))}
