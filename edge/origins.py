"""Browser origins: CORS for the REST API (--cors-origins) and who may open /ws.

A page on another origin needs both: its fetch() calls pass CORS, its WebSocket passes the
/ws origin check. Origins listed in --cors-origins are allowed for both; --allowed-origins
adds origins for /ws alone. CORS headers go on every response, errors included (an output
transform), and preflights are answered before routing (edge/application.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import OutputTransform, RequestHandler

__all__ = ["Origins", "PreflightHandler", "cors_transform", "implemented_methods",
           "ALLOWED_HEADERS", "MAX_AGE", "EXPOSED_HEADERS"]

log = logging.getLogger("ws")

# Request headers the API reads; a preflight allows exactly these.
ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-API-Key"
# Response headers a cross-origin script may read besides the CORS-safelisted ones.
EXPOSED_HEADERS = "Retry-After"
MAX_AGE = 600  # seconds a browser may cache a preflight's answer
REFUSAL_LOG_INTERVAL = 60.0  # at most one log line per refused origin per interval
_REFUSALS_KEPT = 1000  # origins remembered for that; more are forgotten all at once


def implemented_methods(handler_class: type[RequestHandler]) -> list[str]:
    """Returns the HTTP methods a handler class implements, in SUPPORTED_METHODS order."""
    return [m for m in handler_class.SUPPORTED_METHODS
            if getattr(handler_class, m.lower(), None) is not getattr(RequestHandler, m.lower())]


class Origins:
    """Which browser origins may call the API and open /ws; logs refused /ws origins."""

    def __init__(self, cors: Sequence[str], websocket: Sequence[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cors = frozenset(cors)
        self.any_cors = "*" in self.cors
        self.websocket = frozenset(websocket) | self.cors
        self.clock = clock
        self._logged: dict[str, float] = {}  # origin -> when its refusal was last logged

    @property
    def enabled(self) -> bool:
        """Returns whether any origin may call the API cross-origin."""
        return bool(self.cors)

    def cors_origin(self, origin: str | None) -> str | None:
        """Returns the Access-Control-Allow-Origin value for origin, or None if not allowed.

        A listed origin is echoed (and may send credentials); with `*` any other origin gets
        `*`, which browsers never combine with credentials.
        """
        if not origin:
            return None
        if origin.rstrip("/") in self.cors:
            return origin
        return "*" if self.any_cors else None

    def websocket_allows(self, origin: str, host: str) -> bool:
        """Returns whether a page on origin may open /ws on host (same origin always may)."""
        origin = origin.rstrip("/")
        if origin in self.websocket or "*" in self.websocket:
            return True
        return urlsplit(origin).netloc.lower() == host.lower()

    def refused(self, origin: str, host: str) -> None:
        """Logs why a /ws upgrade from origin was refused: once per origin per minute."""
        now = self.clock()
        last = self._logged.get(origin)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            return
        if len(self._logged) >= _REFUSALS_KEPT:
            self._logged.clear()  # bounded: a flood of made-up origins costs no memory
        self._logged[origin] = now
        log.warning("refused a WebSocket from origin %s (this server is %s): add it with "
                    "--allowed-origins or --cors-origins", origin[:200], host[:200])


def cors_transform(origins: Origins) -> type[OutputTransform]:
    """Returns an output transform adding CORS headers to every response of an allowed
    origin's request (errors and static files included)."""

    class CorsHeaders(OutputTransform):
        """Adds Access-Control-Allow-Origin (and Vary: Origin) to a response's first chunk."""

        def __init__(self, request: HTTPServerRequest) -> None:
            super().__init__(request)
            self.origin = request.headers.get("Origin")

        def transform_first_chunk(
            self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
        ) -> tuple[int, HTTPHeaders, bytes]:
            allowed = origins.cors_origin(self.origin)
            if allowed is not None:
                headers["Access-Control-Allow-Origin"] = allowed
                headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                if allowed != "*":
                    headers["Access-Control-Allow-Credentials"] = "true"
            if self.origin is not None and "Origin" not in headers.get_list("Vary"):
                headers.add("Vary", "Origin")
            return status_code, headers, chunk

    return CorsHeaders


class PreflightHandler(RequestHandler):
    """Answers a CORS preflight: 204 with the route's methods for an allowed origin, else a
    403 envelope naming --cors-origins."""

    def initialize(self, origins: Origins, methods: list[str]) -> None:
        self.origins, self.methods = origins, methods

    def check_xsrf_cookie(self) -> None:
        """A preflight carries no credentials: nothing to check."""

    def options(self, *args: Any) -> None:
        origin = self.request.headers.get("Origin", "")
        self.set_header("Vary", "Origin")
        if self.origins.cors_origin(origin) is None:
            self.set_status(403)
            self.finish({"success": False, "error": {
                "code": "origin_not_allowed",
                "message": f"origin {origin[:200]} may not call this API: "
                           "add it with --cors-origins"}})
            return
        self.set_header("Access-Control-Allow-Methods", ", ".join([*self.methods, "OPTIONS"]))
        self.set_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        self.set_header("Access-Control-Max-Age", str(MAX_AGE))
        self.set_status(204)
        self.finish()
