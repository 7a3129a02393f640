"""Client-to-server messages: parses each frame and dispatches its verb. Tornado-free.

A frame is `{"id": N, "type": VERB, "data": {...}}` (`id` optional, 1..2^31, echoed), or on
an events.v1.protobuf connection a binary `Request` that hub.protowire turns into one. A table
maps each type to a verb; a verb returns an Outcome (a reply for the sender, a close, or
nothing) or raises a ServiceError, which becomes an `error` reply with a code from ERROR_CODES.
Nothing a client sends crashes the socket: a bad frame is answered, only abuse closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from auth.ratelimit import InboundLimit
from hub import protowire
from hub.disconnect import BINARY_UNSUPPORTED, REFRESH_REJECTED, TOO_MANY_MESSAGES, Close
from hub.events import Event, EventType
from services import jsonlimits
from services.errors import (
    ANSWERED,
    DatabaseUnavailable,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceError,
    ValidationError,
)
from services.principal import Principal

__all__ = ["Peer", "Outcome", "Inbound", "InboundRecorder", "error", "reply", "NotSubscribed",
           "ERROR_CODES", "MAX_REQUEST_ID"]

log = logging.getLogger("inbound")

MAX_REQUEST_ID = 2**31
ERROR_CODES = ("invalid_json", "invalid_message", "unknown_type", "unknown_channel",
               "forbidden", "too_large", "rate_limited", "unavailable", "not_subscribed")


class NotSubscribed(ServiceError):
    """The verb needs a subscription the connection does not have."""

    code = "not_subscribed"


class Peer(Protocol):
    """The connection a message arrived on, as verbs see it."""

    user_id: int
    name: str
    role: str
    limit: InboundLimit
    channels: set[str]
    # True on an events.v1.protobuf connection: binary messages are Request messages.
    protobuf: bool
    # The connection's id, how it is served ("websocket", "sse") and who is on it
    # (services.hooks.HookUser), for the permission hooks.
    client_id: str
    transport: str
    caller: Any

    def subscribe(self, channel: str) -> bool:
        """Subscribes the connection; False if it already was."""

    def recover(self, channel: str, since: object, epoch: object) -> tuple[Any, list[Any]]:
        """Returns (Recovery, missed encoded events) of a channel for this connection."""

    def unsubscribe(self, channel: str) -> bool:
        """Unsubscribes the connection; False if it was not subscribed."""

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
    """What to do after a message, in one IOLoop turn: send `reply` to the sender, then the
    `replay` events (already encoded), then run `then` (a subscription), then close."""

    reply: Event | None = None
    close: Close | None = None
    replay: tuple[Any, ...] = ()
    then: Callable[[], object] | None = None


def error(code: str, message: str, request_id: int | None = None) -> Outcome:
    """Returns the `error` reply with a machine-readable code and a human message."""
    return Outcome(reply=Event(EventType.ERROR, {"code": code, "message": message},
                               id=request_id))


def reply(data: dict[str, Any], request_id: int | None) -> Outcome:
    """Returns the success reply to a request."""
    return Outcome(reply=Event(EventType.REPLY, data, id=request_id))


def _code(exc: ServiceError | DatabaseUnavailable) -> str:
    if exc.code in ERROR_CODES:
        return exc.code
    if isinstance(exc, NotFound):
        return "unknown_channel"
    if isinstance(exc, PermissionDenied):
        return "forbidden"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, DatabaseUnavailable):
        return "unavailable"
    if isinstance(exc, ValidationError):
        return "invalid_message"
    return "unavailable"


# A verb gets the peer, the frame's `data` and its request id.
Verb = Callable[[Peer, Any, "int | None"], Awaitable[Outcome]]


class Inbound:
    """Parses and dispatches inbound messages; one per application."""

    def __init__(self, auth: Authenticator, verbs: dict[str, Verb] | None = None,
                 recorder: InboundRecorder | None = None) -> None:
        self.auth = auth
        self.recorder = recorder
        self.verbs: dict[str, Verb] = {"auth.refresh": self.refresh, **(verbs or {})}

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
        binary = isinstance(message, bytes)
        if binary and not getattr(peer, "protobuf", False):
            return "binary", Outcome(close=BINARY_UNSUPPORTED)
        verdict = peer.limit.check()
        if verdict == "abuse":
            return "abuse", Outcome(close=TOO_MANY_MESSAGES)
        try:
            if binary:
                parsed = protowire.decode_request(message, jsonlimits.loads)
            else:
                parsed = jsonlimits.loads(message)
        except protowire.DecodeError:
            return "invalid", error("invalid_message", "binary messages are events.v1 Request "
                                    "messages (proto/events.proto) naming one verb")
        except protowire.BadJsonField as exc:
            return "invalid", error("invalid_json", str(exc), exc.request_id)
        except jsonlimits.JsonRejected as exc:
            return "invalid", error("invalid_json", str(exc))
        except ValueError:
            return "invalid", error("invalid_json", "messages must be JSON objects")
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            return "invalid", error("invalid_message",
                                    'messages look like {"type": ..., "data": {...}}')
        request_id = parsed.get("id")
        if request_id is not None and (
            type(request_id) is not int or not 1 <= request_id <= MAX_REQUEST_ID
        ):
            return "invalid", error("invalid_message",
                                    f"id must be a whole number from 1 to {MAX_REQUEST_ID}")
        verb = self.verbs.get(parsed["type"])
        label = parsed["type"] if verb is not None else "unknown"
        if verdict == "limited":
            return label, error("rate_limited", "too many messages: slow down", request_id)
        if verb is None:
            return label, error("unknown_type", f"unknown message type {parsed['type'][:64]!r}",
                                request_id)
        try:
            return label, await verb(peer, parsed.get("data"), request_id)
        except ANSWERED as exc:
            return label, error(_code(exc), exc.message, request_id)
        except Exception:
            log.exception("%s failed", label)
            return label, error("unavailable", "the server could not do this now; retry later",
                                request_id)

    async def refresh(self, peer: Peer, data: Any, request_id: int | None) -> Outcome:
        """auth.refresh: swaps in a fresh access token of the same user without reconnecting."""
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return error("invalid_message", "auth.refresh needs data.token (an access token)",
                         request_id)
        try:
            principal = await self.auth.authenticate(token)
        except DatabaseUnavailable as exc:  # not the token's fault: the client may retry
            return error("unavailable", exc.message, request_id)
        except ServiceError as exc:
            return Outcome(close=REFRESH_REJECTED.detail(exc.message))
        if principal.id != peer.user_id:
            return Outcome(close=REFRESH_REJECTED.detail("token belongs to another user"))
        peer.rebind(principal)
        return Outcome(reply=Event(EventType.AUTH_REFRESHED, {"expires_at": principal.expires_at},
                                   id=request_id))
