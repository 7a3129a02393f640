"""Access and error log lines that never contain a token."""

from __future__ import annotations

import logging
from typing import Protocol
from urllib.parse import unquote_plus

from tornado.web import RequestHandler

__all__ = ["redact", "log_request", "RequestRecorder", "SECRET_PARAMS"]

access_log = logging.getLogger("tornado.access")

# Query parameters whose values are credentials (compared after percent-decoding); a value
# shaped like an API key (auth.apikeys.PREFIX) is redacted whatever its parameter's name.
SECRET_PARAMS = frozenset({"token", "access_token", "refresh_token", "api_key", "apikey",
                           "key"})
KEY_PREFIX = "evk_"


def redact(uri: str) -> str:
    """Returns uri with the values of token-bearing query parameters replaced by REDACTED."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        if (unquote_plus(name).strip().lower() in SECRET_PARAMS
                or unquote_plus(value).strip().startswith(KEY_PREFIX)):
            pair = f"{name}=REDACTED"
        pairs.append(pair)
    return f"{path}?{'&'.join(pairs)}"


class RequestRecorder(Protocol):
    """Counts requests by route pattern (services/metrics.py Metrics.request)."""

    def request(self, handler_class: type, method: str, status: int, seconds: float) -> None: ...


def log_request(handler: RequestHandler, recorder: RequestRecorder | None = None) -> None:
    """Writes the access log line (status, method, redacted URI, client IP, time); counts it.

    The line's fields also travel as `extra={"http": ...}` for the JSON log format.
    """
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    seconds = request.request_time()
    method = request.method or ""
    if recorder is not None:
        recorder.request(type(handler), method, status, seconds)
    if not access_log.isEnabledFor(level):
        return
    path = redact(request.uri or "")
    fields = {"method": method, "path": path, "status": status,
              "duration_ms": round(1000.0 * seconds, 2), "client": request.remote_ip}
    access_log.log(level, "%d %s %s (%s) %.2fms", status, method, path, request.remote_ip,
                   1000.0 * seconds, extra={"http": fields})
