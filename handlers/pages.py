"""Server-rendered pages: the live dashboard at / and the WebSocket test client at /test."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tornado.web import RequestHandler

from edge.origins import implemented_methods

if TYPE_CHECKING:
    from context import Context

__all__ = ["PageHandler", "DashboardHandler", "TestClientHandler", "CONTENT_SECURITY_POLICY"]

# Scripts and styles only from static/ (no inline code), sockets to this server only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class PageHandler(RequestHandler):
    """Base of the HTML pages: security headers, no caching of the shell."""

    template = ""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-store")

    def get(self) -> None:
        self.render(self.template)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", ", ".join(implemented_methods(type(self))))
        super().write_error(status_code, **kwargs)


class DashboardHandler(PageHandler):
    """GET /: the live dashboard (admins: stats, chart, broadcast, users; others: profile)."""

    template = "dashboard.html"


class TestClientHandler(PageHandler):
    """GET /test: the browser WebSocket test client from the seed."""

    template = "test.html"
