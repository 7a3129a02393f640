"""The interface services use to announce what they changed."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Notifier"]


class Notifier(Protocol):
    """Announces committed changes; implementations must not block (called on the IOLoop).

    Each method returns how many local connections the announcement reached.
    """

    def user_created(self, user: dict[str, Any]) -> int: ...

    def user_updated(
        self, user_id: int, changes: list[str], updated_at: str, by_self: bool
    ) -> int: ...

    def role_changed(
        self, user_id: int, old_role: str, new_role: str, changed_by: int, changed_at: str
    ) -> int: ...

    def password_changed(self, user_id: int, token_version: int) -> int: ...

    def user_deleted(self, user: dict[str, Any], deleted_by: int) -> int: ...

    def session_revoked(self, session_id: str) -> int: ...

    def system_alert(
        self, message: str, priority: str, metadata: dict[str, Any], sent_by: int
    ) -> int: ...

    def health_changed(self, status: str, previous: str, checks: dict[str, str]) -> int: ...

    def channel_message(self, channel: str, data: dict[str, Any]) -> str: ...

    def room_unsubscribed(self, channel: str, reason: str, user_id: int | None = None) -> int: ...

    def room_counts(self, channel: str) -> dict[str, int]: ...
