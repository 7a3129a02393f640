"""The seed's Notify* helpers: turn committed changes into events for the right audience."""

from __future__ import annotations

from typing import Any

from hub.disconnect import ACCOUNT_DELETED, SESSION_REVOKED
from hub.events import Event, EventType, now_rfc3339
from hub.hub import Hub
from hub.messages import (
    ADMINS,
    ALL,
    CloseSession,
    CloseUser,
    SetRole,
    ToChannel,
    Unsubscribe,
    to_user,
)

__all__ = ["HubNotifier"]


class HubNotifier:
    """Publishes each domain change to exactly its audience and applies live consequences."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def user_created(self, user: dict[str, Any]) -> int:
        """Tells admins a user registered."""
        data = {
            "user_id": user["id"],
            "name": user["name"],
            "email": user["email"],
            "role": user["role"],
            "created_at": user["created_at"],
        }
        return self.hub.publish(Event(EventType.USER_CREATED, data), ADMINS)

    def user_updated(
        self, user_id: int, changes: list[str], updated_at: str, by_self: bool
    ) -> int:
        """Tells the user and admins what changed; profile.updated too if the user did it."""
        data = {"user_id": user_id, "changes": changes, "updated_at": updated_at}
        sent = self.hub.publish(Event(EventType.USER_UPDATED, data), to_user(user_id) + ADMINS)
        if by_self:
            self.hub.publish(Event(EventType.PROFILE_UPDATED, data), to_user(user_id))
        return sent

    def role_changed(
        self, user_id: int, old_role: str, new_role: str, changed_by: int, changed_at: str
    ) -> int:
        """Re-indexes the user's open connections, then tells the user and admins."""
        self.hub.control(SetRole(user_id, new_role))
        data = {
            "user_id": user_id,
            "old_role": old_role,
            "new_role": new_role,
            "changed_by": changed_by,
            "changed_at": changed_at,
        }
        return self.hub.publish(Event(EventType.USER_ROLE_CHANGED, data), to_user(user_id) + ADMINS)

    def password_changed(self, user_id: int, token_version: int) -> int:
        """Tells the user, then closes their connections opened with older credentials."""
        data = {"user_id": user_id, "changed_at": now_rfc3339()}
        sent = self.hub.publish(Event(EventType.PASSWORD_CHANGED, data), to_user(user_id))
        self.hub.control(CloseUser(user_id, SESSION_REVOKED, below_version=token_version))
        return sent

    def user_deleted(self, user: dict[str, Any], deleted_by: int) -> int:
        """Closes the deleted user's connections, then tells admins."""
        self.hub.control(CloseUser(user["id"], ACCOUNT_DELETED))
        data = {
            "user_id": user["id"],
            "email": user["email"],
            "deleted_by": deleted_by,
            "deleted_at": now_rfc3339(),
        }
        return self.hub.publish(Event(EventType.USER_DELETED, data), ADMINS)

    def session_revoked(self, session_id: str) -> int:
        """Closes every connection opened with a token of a revoked session."""
        return self.hub.control(CloseSession(session_id, SESSION_REVOKED))

    def system_alert(
        self, message: str, priority: str, metadata: dict[str, Any], sent_by: int
    ) -> int:
        """Sends an alert to every connection; returns how many received it."""
        data = {"message": message, "priority": priority, "metadata": metadata, "sent_by": sent_by}
        return self.hub.publish(Event(EventType.SYSTEM_ALERT, data), ALL)

    def health_changed(self, status: str, previous: str, checks: dict[str, str]) -> int:
        """Tells admins the health status flipped."""
        data = {"status": status, "previous_status": previous, "checks": checks,
                "changed_at": now_rfc3339()}
        return self.hub.publish(Event(EventType.HEALTH_STATUS_CHANGED, data), ADMINS)

    def channel_message(self, channel: str, data: dict[str, Any]) -> int:
        """Sends a room message to every subscriber of its channel, the sender included."""
        event = Event(EventType.CHANNEL_MESSAGE, data, channel=channel)
        return self.hub.publish(event, (ToChannel(channel),))

    def room_unsubscribed(self, channel: str, reason: str, user_id: int | None = None) -> int:
        """Unsubscribes a room's sockets (or one user's) on every node, telling them why."""
        return self.hub.control(Unsubscribe(channel, reason, user_id))

    def room_counts(self, channel: str) -> dict[str, int]:
        """Returns a room's live subscriber connections and users online in it."""
        return {"subscribers": self.hub.subscriber_count(channel),
                "online": len(self.hub.presence.members(channel))}
