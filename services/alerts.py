"""Admin broadcasts: validates a system alert and sends it to every connection."""

from __future__ import annotations

import json
from typing import Any

from hub import feed
from services import validation as v
from services.errors import PermissionDenied
from services.outbox import Relay
from services.principal import Principal

__all__ = ["AlertService", "PRIORITIES"]

PRIORITIES = ("low", "normal", "high", "critical")
MAX_METADATA_BYTES = 16 * 1024


class AlertService:
    """Owns the system.alert broadcast."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def broadcast(self, actor: Principal, body: Any) -> int:
        """Validates the alert, stores it in the outbox and publishes it to all; returns local
        recipients."""
        if not actor.is_admin:
            raise PermissionDenied("admin access required")
        fields = v.Fields(body, ("message", "priority", "metadata"))
        message = fields.required("message", lambda value: v.text(value, "message", 1, 4096))
        priority = fields.optional("priority", v.choice("priority", PRIORITIES), "normal")
        metadata = fields.optional("metadata", _metadata) or {}
        fields.done()
        return await self.relay.emit(feed.system_alert(message, priority, metadata, actor.id))


def _metadata(value: Any) -> dict[str, Any] | None:
    """Returns an alert's metadata: a JSON object of at most 16 KiB (null means none)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise v.invalid("metadata", "must be a JSON object")
    if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
        raise v.invalid("metadata", "must be at most 16 KiB of JSON")
    return value
