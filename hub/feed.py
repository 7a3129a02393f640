"""The feed events the seed defines, as (type, data, targets) for exactly their audience.

Building an event is separate from publishing it: services build feed events inside their
transaction and store them in the outbox; the relay publishes the committed rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.events import EventType, now_rfc3339
from hub.messages import ADMINS, ALL, Target, to_user

__all__ = [
    "FeedEvent",
    "user_created",
    "user_updated",
    "role_changed",
    "password_changed",
    "user_deleted",
    "system_alert",
    "health_changed",
]


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One feed event before it is published: its type, data and audience."""

    type: str
    data: dict[str, Any]
    targets: tuple[Target, ...]


def user_created(user: dict[str, Any]) -> list[FeedEvent]:
    """Tells admins a user registered."""
    data = {"user_id": user["id"], "name": user["name"], "email": user["email"],
            "role": user["role"], "created_at": user["created_at"]}
    return [FeedEvent(EventType.USER_CREATED, data, ADMINS)]


def user_updated(user_id: int, changes: list[str], updated_at: str,
                 by_self: bool) -> list[FeedEvent]:
    """Tells the user and admins what changed; profile.updated too if the user did it."""
    data = {"user_id": user_id, "changes": changes, "updated_at": updated_at}
    events = [FeedEvent(EventType.USER_UPDATED, data, to_user(user_id) + ADMINS)]
    if by_self:
        events.append(FeedEvent(EventType.PROFILE_UPDATED, data, to_user(user_id)))
    return events


def role_changed(user_id: int, old_role: str, new_role: str, changed_by: int | None,
                 changed_at: str) -> list[FeedEvent]:
    """Tells the user and admins a role changed (changed_by None: the identity provider)."""
    data = {"user_id": user_id, "old_role": old_role, "new_role": new_role,
            "changed_by": changed_by, "changed_at": changed_at}
    return [FeedEvent(EventType.USER_ROLE_CHANGED, data, to_user(user_id) + ADMINS)]


def password_changed(user_id: int) -> list[FeedEvent]:
    """Tells the user their password changed."""
    data = {"user_id": user_id, "changed_at": now_rfc3339()}
    return [FeedEvent(EventType.PASSWORD_CHANGED, data, to_user(user_id))]


def user_deleted(user: dict[str, Any], deleted_by: int) -> list[FeedEvent]:
    """Tells admins an account was deleted."""
    data = {"user_id": user["id"], "email": user["email"], "deleted_by": deleted_by,
            "deleted_at": now_rfc3339()}
    return [FeedEvent(EventType.USER_DELETED, data, ADMINS)]


def system_alert(message: str, priority: str, metadata: dict[str, Any],
                 sent_by: int) -> list[FeedEvent]:
    """Sends an alert to every connection."""
    data = {"message": message, "priority": priority, "metadata": metadata, "sent_by": sent_by}
    return [FeedEvent(EventType.SYSTEM_ALERT, data, ALL)]


def health_changed(status: str, previous: str, checks: dict[str, str]) -> list[FeedEvent]:
    """Tells admins the health status flipped."""
    data = {"status": status, "previous_status": previous, "checks": checks,
            "changed_at": now_rfc3339()}
    return [FeedEvent(EventType.HEALTH_STATUS_CHANGED, data, ADMINS)]
