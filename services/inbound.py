"""Client-to-server messages: parses each frame and dispatches its verb. Tornado-free.

A table maps each message type to a verb; a verb returns an Outcome (a reply for the sender,
a close, or nothing) and never raises for bad input, so an unknown type or a bad field is an
`error` event, never a crash. The socket handler only sends what the outcome says.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hub.disconnect import BINARY_UNSUPPORTED, REFRESH_REJECTED, Close
from hub.events import Event, EventType
from services.errors import ServiceError
from services.principal import Principal

__all__ = ["Peer", "Outcome", "Inbound", "InboundRecorder", "error"]


class Peer(Protocol):
    """The connection a message arrived on, as verbs see it."""

    @property
    def user_id(self) -> int:
        """The id of the user the connection belongs to."""

    def rebind(self, principal: Principal) -> None:
        """Moves the connection to principal's session, token version and expiry."""


class InboundRecorder(Protocol):
    """Counts inbound messages by verb and error replies by code (services/metrics.py)."""

    def inbound(self, verb: str, error: str | None) -> None: ...


class Authenticator(Protocol):
    """Checks an access token (AuthService.authenticate)."""

    async def authenticate(self, token: str) -> Principal: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do after a message: send `reply` to the sender, then close with `close`."""

    reply: Event | None = None
    close: Close | None = None


def error(code: str, message: str) -> Outcome:
    """Returns the `error` event reply with a machine-readable code and a human message."""
    return Outcome(reply=Event(EventType.ERROR, {"code": code, "message": message}))


Verb = Callable[[Peer, Any], Awaitable[Outcome]]


class Inbound:
    """Parses and dispatches inbound messages; one per application."""

    def __init__(self, auth: Authenticator, recorder: InboundRecorder | None = None) -> None:
        self.auth = auth
        self.recorder = recorder
        self.verbs: dict[str, Verb] = {"auth.refresh": self.refresh}

    async def handle(self, peer: Peer, message: str | bytes) -> Outcome:
        """Returns the outcome of one inbound WebSocket message, counting it by verb and error."""
        verb, outcome = await self._dispatch(peer, message)
        if self.recorder is not None:
            reply = outcome.reply
            code = reply.data.get("code") if reply and reply.type == EventType.ERROR else None
            self.recorder.inbound(verb, code)
        return outcome

    async def _dispatch(self, peer: Peer, message: str | bytes) -> tuple[str, Outcome]:
        """Returns the verb label (a table key or a fixed word, never client text) and outcome."""
        if isinstance(message, bytes):
            return "binary", Outcome(close=BINARY_UNSUPPORTED)
        try:
            parsed = json.loads(message)
        except ValueError:
            return "invalid", error("invalid_json", "messages must be JSON objects")
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            return "invalid", error(
                "invalid_message", 'messages look like {"type": ..., "data": {...}}')
        verb = self.verbs.get(parsed["type"])
        if verb is None:
            return "unknown", error(
                "unknown_type", f"unknown message type {parsed['type'][:64]!r}")
        return parsed["type"], await verb(peer, parsed.get("data"))

    async def refresh(self, peer: Peer, data: Any) -> Outcome:
        """auth.refresh: swaps in a fresh access token of the same user without reconnecting."""
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return error("invalid_message", "auth.refresh needs data.token (an access token)")
        try:
            principal = await self.auth.authenticate(token)
        except ServiceError as exc:
            return Outcome(close=REFRESH_REJECTED.detail(exc.message))
        if principal.id != peer.user_id:
            return Outcome(close=REFRESH_REJECTED.detail("token belongs to another user"))
        peer.rebind(principal)
        return Outcome(reply=Event(EventType.AUTH_REFRESHED, {"expires_at": principal.expires_at}))
