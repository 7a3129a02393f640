"""Event: one message from the server as `Client.events()` yields it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["Event", "RECOVERY", "utc_now"]

# The type of the event the client adds after each (re)connect (see Client.events()).
RECOVERY = "recovery"


def utc_now() -> str:
    """Returns the current time as the server writes timestamps (RFC 3339 UTC, ms)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Event:
    """One event: its type, payload, emit time, room (None for the feed) and offset (None for
    events that are not logged: presence, typing, the client's own `recovery`)."""

    type: str
    data: Any
    timestamp: str
    channel: str | None = None
    offset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Returns the event as a JSON-ready dict with every field (None where absent)."""
        return {"type": self.type, "channel": self.channel, "offset": self.offset,
                "timestamp": self.timestamp, "data": self.data}

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Event:
        """Builds an event from a decoded server frame."""
        return cls(type=frame["type"], data=frame.get("data"),
                   timestamp=frame.get("timestamp", ""), channel=frame.get("channel"),
                   offset=frame.get("offset"))
