"""Admin broadcasts: validates a system alert and sends it to every connection."""

from __future__ import annotations

import json
from typing import Any

from hub import feed
from services import validation as v
from services.errors import PermissionDenied, ValidationError
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
        body = v.require_object(body)
        v.reject_unknown(body, ("message", "priority", "metadata"))
        message = v.text(body.get("message"), "message", 1, 4096)
        priority = body.get("priority", "normal")
        if priority not in PRIORITIES:
            raise ValidationError(f"priority must be one of: {', '.join(PRIORITIES)}")
        metadata = body.get("metadata")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise ValidationError("metadata must be a JSON object")
        if len(json.dumps(metadata, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
            raise ValidationError("metadata must be at most 16 KiB of JSON")
        return await self.relay.emit(feed.system_alert(message, priority, metadata, actor.id))
