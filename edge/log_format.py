"""Log line formats: plain text, or one JSON object per line (--log-format=json)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time

__all__ = ["JsonFormatter", "TextFormatter", "TEXT_FORMAT", "scrub"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Last line of defence: a token-bearing query parameter or anything shaped like a JWT.
_SECRETS = re.compile(
    r"((?:access_|refresh_)?token=)[^&\s\"']+|eyJ[\w-]+\.[\w-]+\.[\w-]+", re.IGNORECASE)


def scrub(text: str) -> str:
    """Returns text with token values and JWT-shaped strings replaced by REDACTED."""
    return _SECRETS.sub(lambda m: (m.group(1) or "") + "REDACTED", text)


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT lines, the date and time part made once per second (not per line).

    Formatting runs under the handler's lock, so the cache needs none of its own.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        """Formatter.format(), the same line, put together with one f-string where the base
        class goes through its style object and a format string per record (every handshake
        writes an access-log line). A record with an exception or a stack takes the base
        class's path."""
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = message = record.getMessage()
        record.asctime = asctime = self.formatTime(record)
        return f"{asctime} {record.levelname} {record.name}: {message}"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, request fields, error.

    Access-log records carry `method`, `path` (token redacted), `status`, `duration_ms` and
    `client` (handlers/access_log.py); a record with an exception carries its text in `error`.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        fields = getattr(record, "http", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["error"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            line["error"] = scrub(record.exc_text)
        if record.stack_info:
            line["stack"] = scrub(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)
