"""The table of domain errors: each kind of failure has one class, one status and one code.

The database's own (unreachable, busy) are raised below the services, in models/errors.py,
and answered the same way: `ANSWERED` is every error a client is told about.
"""

from __future__ import annotations

from models.errors import DatabaseBusy, DatabaseUnavailable

__all__ = [
    "ServiceError",
    "ValidationError",
    "AuthenticationError",
    "PermissionDenied",
    "InvalidApiKey",
    "InsufficientScope",
    "NotFound",
    "Conflict",
    "RateLimited",
    "HookDenied",
    "HookUnavailable",
    "DatabaseUnavailable",
    "DatabaseBusy",
    "ANSWERED",
]


class ServiceError(Exception):
    """Base of every error a client can be told about."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(ServiceError):
    """The request body or a parameter is malformed or out of range.

    `fields` names each invalid field with what is wrong with it (`{"email": "required"}`);
    the error envelope carries it, so a form can mark every bad field at once.
    """

    status = 400
    code = "validation_error"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class AuthenticationError(ServiceError):
    """Credentials or a token are missing, wrong, expired or revoked."""

    status = 401
    code = "unauthorized"


class PermissionDenied(ServiceError):
    """The caller is authenticated but not allowed to do this."""

    status = 403
    code = "forbidden"


class InvalidApiKey(AuthenticationError):
    """No API key, or an unknown or revoked one, on a server API route."""

    code = "invalid_api_key"


class InsufficientScope(PermissionDenied):
    """The API key is valid but lacks the scope the route needs."""

    code = "insufficient_scope"


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


class HookDenied(PermissionDenied):
    """The application's permission hook answered deny (its message is the client's)."""


class HookUnavailable(ServiceError):
    """The application's permission hook did not answer allow or deny in time: fail closed."""

    status = 503
    code = "unavailable"


# Every error a client is told about (an error envelope, a reply's code, a refused upgrade):
# anything else is a fault, logged with its traceback and answered 500 or "unavailable".
ANSWERED: tuple[type[ServiceError], type[DatabaseUnavailable]] = (ServiceError, DatabaseUnavailable)
