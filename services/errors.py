"""The table of domain errors: each kind of failure has one class, one status and one code."""

from __future__ import annotations

__all__ = [
    "ServiceError",
    "ValidationError",
    "AuthenticationError",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "RateLimited",
    "DatabaseUnavailable",
    "DatabaseBusy",
]


class ServiceError(Exception):
    """Base of every error a client can be told about."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(ServiceError):
    """The request body or a parameter is malformed or out of range."""

    status = 400
    code = "validation_error"


class AuthenticationError(ServiceError):
    """Credentials or a token are missing, wrong, expired or revoked."""

    status = 401
    code = "unauthorized"


class PermissionDenied(ServiceError):
    """The caller is authenticated but not allowed to do this."""

    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    """The addressed resource does not exist."""

    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """The request clashes with existing data (e.g. an email already registered)."""

    status = 409
    code = "conflict"


class RateLimited(ServiceError):
    """Too many attempts; the client should wait `retry_after` seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseUnavailable(ServiceError):
    """The database cannot be reached; the client should retry after `retry_after` seconds."""

    status = 503
    code = "database_unavailable"

    def __init__(self, message: str = "the database is unavailable; try again shortly",
                 retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseBusy(DatabaseUnavailable):
    """The database stayed locked by other writers for longer than the busy timeout."""

    code = "database_busy"
