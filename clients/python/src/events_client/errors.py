"""The exceptions events_client raises: one type per kind of failure, all in this module."""

from __future__ import annotations

__all__ = [
    "EventsClientError",
    "ApiError",
    "AuthError",
    "ConnectError",
    "ConnectionLost",
    "RequestError",
    "RequestTimeout",
    "Revoked",
]


class EventsClientError(Exception):
    """Base class of every error this library raises."""


class ApiError(EventsClientError):
    """A REST call answered with an error status and the server's error envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class AuthError(ApiError):
    """The server refused the credentials or the token (HTTP 401 or 403): log in again.

    Raised by `login` and `refresh`, when the WebSocket upgrade is refused, and from
    `Client.events()` when an expired token cannot be renewed (no refresh token was given,
    or the server refused it).
    """


class ConnectError(EventsClientError):
    """The server could not be reached: the first connection failed, or reconnecting gave up
    after `Backoff.max_attempts` failures in a row."""


class ConnectionLost(EventsClientError):
    """The socket closed (or the client was closed) before a request was answered; a publish
    may or may not have happened."""


class RequestError(EventsClientError):
    """The server answered a request with an `error` reply; `code` is its stable error code
    (`forbidden`, `unknown_channel`, `rate_limited`, ... in docs/websocket.md)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class RequestTimeout(EventsClientError, TimeoutError):
    """No answer came within the client's `request_timeout`."""


class Revoked(EventsClientError):
    """The server closed the socket with 1008 for good: the session was revoked (logout, a
    password change), the account deleted, or the client misbehaved. `reason` is the close
    reason (`session revoked`, `account deleted`, ...); reconnecting cannot help."""

    code = 1008

    def __init__(self, reason: str) -> None:
        super().__init__(f"closed with 1008: {reason}")
        self.reason = reason
