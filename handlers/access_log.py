"""Access and error log lines that never contain a token."""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

from tornado.web import RequestHandler

__all__ = ["redact", "log_request", "SECRET_PARAMS"]

access_log = logging.getLogger("tornado.access")

# Query parameters whose values are credentials (compared after percent-decoding).
SECRET_PARAMS = frozenset({"token", "access_token", "refresh_token"})


def redact(uri: str) -> str:
    """Returns uri with the values of token-bearing query parameters replaced by REDACTED."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    pairs = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        if unquote_plus(name).strip().lower() in SECRET_PARAMS:
            pair = f"{name}=REDACTED"
        pairs.append(pair)
    return f"{path}?{'&'.join(pairs)}"


def log_request(handler: RequestHandler) -> None:
    """Writes the access log line: status, method, redacted URI, client IP and time."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    access_log.log(level, "%d %s %s (%s) %.2fms", status, request.method,
                   redact(request.uri or ""), request.remote_ip, 1000.0 * request.request_time())
