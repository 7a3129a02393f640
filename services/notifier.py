"""The interface services use for live consequences and room events (feed events go
through the outbox: services/outbox.py)."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Notifier"]


class Notifier(Protocol):
    """Applies live consequences of committed changes; must not block (called on the IOLoop).

    Each method returns how many local connections it reached or touched.
    """

    def set_role(self, user_id: int, new_role: str) -> int: ...

    def close_older_sessions(self, user_id: int, token_version: int) -> int: ...

    def close_user(self, user_id: int) -> int: ...

    def session_revoked(self, session_id: str) -> int: ...

    async def channel_message(self, channel: str, data: dict[str, Any]) -> str: ...

    def room_unsubscribed(self, channel: str, reason: str, user_id: int | None = None) -> int: ...

    def room_counts(self, channel: str) -> dict[str, int]: ...
