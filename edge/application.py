"""What every request passes first: client address, body-size gate, security and CORS headers,
CORS preflights, static files."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import tornado.web
from tornado.httputil import HTTPHeaders, HTTPMessageDelegate, HTTPServerRequest, format_timestamp
from tornado.web import HTTPError, OutputTransform, RequestHandler, StaticFileHandler

from auth.clientip import Network, client_ip
from edge.origins import Origins, PreflightHandler, cors_transform, implemented_methods

__all__ = ["EdgeApplication", "SafeStaticFileHandler", "SERVER_NAME", "security_headers",
           "FAVICON_CACHE_SECONDS"]

SERVER_NAME = "events-server"
FAVICON_CACHE_SECONDS = 86400  # browsers ask for /favicon.ico on every new page otherwise


def security_headers(hsts: int) -> tuple[tuple[str, str], ...]:
    """Returns the headers every response carries: nosniff, frame options, a versionless
    Server and (if on) HSTS."""
    fixed = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
             ("Server", SERVER_NAME))
    return fixed + ((("Strict-Transport-Security", f"max-age={hsts}"),) if hsts else ())


def _security_transform(fixed: tuple[tuple[str, str], ...]) -> type[OutputTransform]:
    """Returns an output transform adding the security headers to every response."""

    class SecurityHeaders(OutputTransform):
        """Adds the fixed security headers to a response's first chunk."""

        def transform_first_chunk(
            self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
        ) -> tuple[int, HTTPHeaders, bytes]:
            for name, value in fixed:
                headers[name] = value
            return status_code, headers, chunk

    return SecurityHeaders


class SafeStaticFileHandler(StaticFileHandler):
    """Serves static/; paths with NUL, control characters or `..` are 404 (never 500 or 403).

    Tornado also routes /favicon.ico here: it gets static/favicon.svg, cacheable for a day.
    """

    def parse_url_path(self, url_path: str) -> str:
        bad = any(ord(c) < 0x20 or ord(c) == 0x7F for c in url_path) or "\\" in url_path
        if bad or ".." in url_path.split("/"):
            raise HTTPError(404)
        if self.request.path == "/favicon.ico":
            return "favicon.svg"
        return super().parse_url_path(url_path)

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        if self.request.path == "/favicon.ico":
            return FAVICON_CACHE_SECONDS
        return super().get_cache_time(path, modified, mime_type)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", ", ".join(implemented_methods(type(self))))
        super().write_error(status_code, **kwargs)


class EdgeApplication(tornado.web.Application):
    """The application, plus the per-request work that precedes routing."""

    def __init__(
        self, handlers: list, *, trusted_proxies: Sequence[Network], body_limit: int, hsts: int,
        too_large_handler: type[RequestHandler], origins: Origins | None = None,
        **settings: Any,
    ) -> None:
        self.trusted_proxies = tuple(trusted_proxies)
        self.body_limit = body_limit
        # Answers 413 from the headers when a body is declared (or streams) over the limit.
        self.too_large_handler = too_large_handler
        # Also written by the WebSocket upgrade, which answers without Tornado's transforms.
        self.security_headers = security_headers(hsts)
        self._upgrade_lines = (-1, b"")
        transforms: list[type[OutputTransform]] = [_security_transform(self.security_headers)]
        # Preflights are answered (a refusal names --cors-origins) even with no origin listed;
        # the headers of allowed responses cost a transform only when some origin is.
        self.origins = origins if origins is not None else Origins((), ())
        if self.origins.enabled:
            transforms.append(cors_transform(self.origins))
        # (path pattern, the methods its handler implements), for answering preflights.
        self.route_methods = [(re.compile(rule[0]), implemented_methods(rule[1]))
                              for rule in handlers]
        super().__init__(handlers, transforms=transforms,
                         static_handler_class=SafeStaticFileHandler, **settings)

    def upgrade_headers(self) -> bytes:
        """Returns the Date and security header lines, ending the head, of a 101 response.

        The WebSocket upgrade writes its response itself (edge/protocol.py); the lines
        change once a second, with the Date.
        """
        now = int(time.time())
        if now != self._upgrade_lines[0]:
            lines = [("Date", format_timestamp(now)), *self.security_headers]
            self._upgrade_lines = (now, "".join(f"{name}: {value}\r\n" for name, value in lines)
                                   .encode("latin-1") + b"\r\n")
        return self._upgrade_lines[1]

    def resolve_client(self, request: HTTPServerRequest) -> None:
        """Sets request.remote_ip to the client's address (behind --trusted-proxies, the
        nearest untrusted hop of X-Forwarded-For or X-Real-IP)."""
        if not self.trusted_proxies:  # the peer's address, which the request already has
            return
        request.remote_ip = client_ip(
            request.remote_ip or "", request.headers.get_list("X-Forwarded-For"),
            request.headers.get("X-Real-IP"), self.trusted_proxies)

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
        """Resolves the client address, refuses oversized bodies, then routes as usual."""
        self.resolve_client(request)
        declared = _content_length(request)
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if (declared is not None and declared > self.body_limit) or chunked:
            # Tornado's own check would answer a bare 400; it is lifted for this request so
            # that the 413 below is what the client gets (the body is dropped, not kept).
            if request.connection is not None:
                request.connection.set_max_body_size(1 << 62)  # type: ignore[attr-defined]
        if declared is not None and declared > self.body_limit:
            return self.too_large(request)
        if (request.method == "OPTIONS" and "Origin" in request.headers
                and "Access-Control-Request-Method" in request.headers):
            methods = self.methods_of(request.path)
            if methods is not None:
                return self.get_handler_delegate(
                    request, PreflightHandler, {"origins": self.origins, "methods": methods})
        delegate = super().find_handler(request, **kwargs)
        return _CappedBody(self, request, delegate) if chunked else delegate

    def methods_of(self, path: str) -> list[str] | None:
        """Returns the methods of the route serving path, or None if no route does."""
        for pattern, methods in self.route_methods:
            if pattern.fullmatch(path):
                return methods
        return None

    def too_large(self, request: HTTPServerRequest) -> Any:
        """Returns the delegate that answers 413 for request."""
        return self.get_handler_delegate(request, self.too_large_handler,
                                         {"limit": self.body_limit})


class _CappedBody(HTTPMessageDelegate):
    """Passes a chunked body through until it passes the limit, then answers 413 instead."""

    def __init__(self, app: EdgeApplication, request: HTTPServerRequest,
                 inner: HTTPMessageDelegate) -> None:
        self.app, self.request, self.inner = app, request, inner
        self.size, self.refused = 0, False
        self.start: Any = None

    def headers_received(self, start_line: Any, headers: HTTPHeaders) -> Any:
        self.start = (start_line, headers)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        if self.refused:
            return None
        self.size += len(chunk)
        if self.size > self.app.body_limit:
            self.refused = True  # the buffered part goes with the replaced delegate
            self.inner = self.app.too_large(self.request)
            return self.inner.headers_received(*self.start)
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()


def _content_length(request: HTTPServerRequest) -> int | None:
    """Returns the declared Content-Length, or None if absent or malformed."""
    value = request.headers.get("Content-Length")
    if value is None:
        return None
    try:
        return int(value.split(",")[0].strip())
    except ValueError:
        return None
