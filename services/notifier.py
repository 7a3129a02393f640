"""The interface services use to announce what they changed."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Notifier"]


class Notifier(Protocol):
    """Announces committed changes; implementations must not block (called on the IOLoop)."""

    def user_created(self, user: dict[str, Any]) -> None: ...

    def user_updated(
        self, user_id: int, changes: list[str], updated_at: str, by_self: bool
    ) -> None: ...

    def role_changed(
        self, user_id: int, old_role: str, new_role: str, changed_by: int, changed_at: str
    ) -> None: ...

    def password_changed(self, user_id: int, token_version: int) -> None: ...

    def user_deleted(self, user: dict[str, Any], deleted_by: int) -> None: ...

    def session_revoked(self, session_id: str) -> None: ...

    def system_alert(
        self, message: str, priority: str, metadata: dict[str, Any], sent_by: int
    ) -> int: ...

    def health_changed(self, status: str, previous: str, checks: dict[str, str]) -> None: ...
