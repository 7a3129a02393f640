"""GET /clients/js/index.js: the JavaScript client library, served to the pages from its package."""

from __future__ import annotations

import os
from collections.abc import Awaitable

from tornado.web import StaticFileHandler

__all__ = ["ClientLibraryHandler", "LIBRARY_DIR", "LIBRARY_ROUTE"]

LIBRARY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "clients", "js")
# The one file of clients/js a browser loads (the package's protobuf module is for Node).
LIBRARY_ROUTE = r"/clients/js/index\.js"


class ClientLibraryHandler(StaticFileHandler):
    """Serves clients/js/index.js as it is in the package, revalidated on every load so that
    a page never runs an older library than the server ships."""

    def initialize(self) -> None:  # type: ignore[override]
        super().initialize(path=LIBRARY_DIR)

    def get(self, include_body: bool = True) -> Awaitable[None]:  # type: ignore[override]
        return super().get("index.js", include_body)

    def head(self) -> Awaitable[None]:  # type: ignore[override]
        return self.get(include_body=False)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")
