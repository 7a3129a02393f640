"""The database's failures a client is told about: unreachable, or locked past the busy wait.

Raised by the Runner's job wrapper (models/db.py); answered 503 with Retry-After, like the
domain's errors (services/errors.py ANSWERED).
"""

from __future__ import annotations

__all__ = ["DatabaseUnavailable", "DatabaseBusy"]


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the client should retry after `retry_after` seconds."""

    status = 503
    code = "database_unavailable"

    def __init__(self, message: str = "the database is unavailable; try again shortly",
                 retry_after: int = 5) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class DatabaseBusy(DatabaseUnavailable):
    """The database stayed locked by other writers for longer than the busy timeout."""

    code = "database_busy"
