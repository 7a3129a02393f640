"""The JSON API base handler: context, body parsing, authentication and error envelopes."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

import tornado.web
from tornado import httputil
from tornado.log import app_log, gen_log
from tornado.web import HTTPError, RequestHandler

from edge import internals
from edge.access_log import redact
from edge.origins import implemented_methods
from services import jsonlimits
from services.errors import ANSWERED, AuthenticationError, PermissionDenied, ValidationError
from services.principal import KeyPrincipal, Principal
from services.validation import summary

if TYPE_CHECKING:
    from context import Context

__all__ = [
    "ApiHandler", "ErrorEnvelopeMixin", "NotFoundHandler", "TooLargeHandler", "api_key",
    "bearer_token", "human_size",
]

log = logging.getLogger("api")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
               429: "rate_limited", 503: "unavailable"}


def human_size(size: int) -> str:
    """Formats a byte count as the largest exact unit: `1 MiB`, `64 KiB`, `1000 bytes`."""
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def api_key(handler: RequestHandler) -> str | None:
    """Returns the API key of an `X-API-Key` or `Authorization: Apikey` header, if any."""
    key = handler.request.headers.get("X-API-Key", "").strip()
    if key:
        return key
    scheme, _, value = handler.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "apikey" or not value.strip():
        return None
    return value.strip()


def bearer_token(handler: RequestHandler) -> str | None:
    """Returns the token of an `Authorization: Bearer` header, if any."""
    header = handler.request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


class ErrorEnvelopeMixin(RequestHandler):
    """Renders every error as {"success": false, "error": {"code", "message"}} (plus
    "fields" for a validation error: each invalid field and what is wrong with it).

    A ServiceError (or a database error) raised while handling a request is an answer, not a
    fault: Tornado's send_error() passes it here with status 500, and the response takes the
    error's own status; it is not logged.
    """

    def clear(self) -> None:
        internals.clear_response(self)  # Tornado's, with a Date header made once a second

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 405:  # RFC 9110: a 405 lists the methods the resource supports
            self.set_header("Allow", ", ".join(implemented_methods(type(self))))
        error: dict[str, Any] = {}
        if isinstance(exc, ANSWERED):
            self.set_status(exc.status)
            code, message = exc.code, exc.message
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                self.set_header("Retry-After", str(retry_after))
            if getattr(exc, "fields", None):  # every invalid field, named (ValidationError)
                error["fields"] = exc.fields
        elif isinstance(exc, HTTPError) and exc.log_message and status_code < 500:
            message = exc.log_message % exc.args if exc.args else exc.log_message
            code = _HTTP_CODES.get(status_code, "error")
        else:
            code = _HTTP_CODES.get(status_code, "internal_error")
            message = (_reason_phrase(status_code, exc, kwargs.get("reason")) if status_code < 500
                       else "internal server error")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish({"success": False, "error": {"code": code, "message": message, **error}})

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Logs like Tornado, but with token values redacted from the request line and without
        its repr of the request (which holds the raw query string); not an answered error."""
        if isinstance(value, ANSWERED):
            return
        request = self.request
        summary = f"{request.method} {redact(request.uri or '')} ({request.remote_ip})"
        if isinstance(value, HTTPError):
            message = value.get_message()
            if message:
                gen_log.warning("%d %s: %s", value.status_code, summary, message)
        else:
            app_log.error("Uncaught exception %s", summary,
                          exc_info=(typ, value, tb))  # type: ignore[arg-type]


def _reason_phrase(status_code: int, exc: BaseException | None, reason: str | None) -> str:
    """Returns the reason phrase Tornado's response line carries for an error."""
    if reason:
        return reason
    if isinstance(exc, HTTPError) and exc.reason:
        return exc.reason
    return httputil.responses.get(status_code, "Unknown")


class ApiHandler(ErrorEnvelopeMixin):
    """Base of the JSON API: shares the context, parses bodies, loads the caller."""

    ctx: Context

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx

    def prepare(self) -> None:
        limit = self.ctx.settings.max_body_size
        if len(self.request.body) > limit:
            raise HTTPError(413, "request body is larger than the %s limit", human_size(limit))
        # Every query parameter of the API takes one value: `?page=1&page=2` is refused rather
        # than answered with one of them picked silently.
        repeated = [name for name, values in self.request.query_arguments.items()
                    if len(values) > 1]
        if repeated:
            errors = {name: "is given more than once" for name in repeated}
            raise ValidationError(summary(errors), errors)

    def check_xsrf_cookie(self) -> None:
        """Bearer-token API: no cookies are used, so there is nothing to forge."""

    def json_body(self) -> Any:
        """Returns the parsed JSON body or raises a 400 that says what is wrong."""
        if not self.request.body:
            raise HTTPError(400, "a JSON request body is required")
        try:
            return jsonlimits.loads(self.request.body)
        except jsonlimits.JsonRejected as exc:
            raise HTTPError(400, "%s", str(exc)) from None
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "the request body is not valid JSON") from None

    async def principal(self) -> Principal:
        """Returns the authenticated caller or raises 401."""
        token = bearer_token(self)
        if token is None:
            raise AuthenticationError("missing bearer token: send 'Authorization: Bearer <token>'")
        return await self.ctx.auth.authenticate(token)

    async def key_caller(self) -> KeyPrincipal:
        """Returns the application service behind the request's API key (`X-API-Key: <key>`
        or `Authorization: Apikey <key>`); 401 invalid_api_key otherwise, a bearer token
        included."""
        return await self.ctx.apikeys.authenticate(api_key(self))

    async def admin(self) -> Principal:
        """Returns the caller if they are an admin: 401 without a valid token, 403 otherwise."""
        actor = await self.principal()
        if not actor.is_admin:
            raise PermissionDenied("admin access required")
        return actor

    def ok(self, data: Any, status: int = 200) -> None:
        """Writes the success envelope."""
        self.set_status(status)
        self.finish({"success": True, "data": data})


class NotFoundHandler(ApiHandler):
    """Answers unknown paths with the JSON error envelope."""

    def prepare(self) -> None:
        raise HTTPError(404, "no such endpoint: %s", self.request.path)


@tornado.web.stream_request_body
class TooLargeHandler(ErrorEnvelopeMixin):
    """Answers 413 as soon as the headers declare a body over the limit, reading none of it."""

    def initialize(self, limit: int) -> None:
        self.limit = limit

    def prepare(self) -> None:
        raise HTTPError(413, "request body is larger than the %s limit", human_size(self.limit))

    def check_xsrf_cookie(self) -> None:
        """Nothing to check: the request is refused before its body."""

    def data_received(self, chunk: bytes) -> None:
        """Discards what arrives before the connection closes."""
