"""GET /api/v1/openapi.json (the REST API's OpenAPI document) and GET /docs (its reader)."""

from __future__ import annotations

import functools
import json

from config import VERSION
from handlers.base import ApiHandler
from handlers.pages import PageHandler
from openapi import DOCUMENT_PATH, build_document

__all__ = ["OpenApiHandler", "DocsHandler", "document_bytes"]


@functools.cache
def document_bytes(version: str) -> bytes:
    """Returns the document as JSON, built once per process (it is constant data)."""
    return json.dumps(build_document(version), separators=(",", ":")).encode("utf-8")


class OpenApiHandler(ApiHandler):
    """GET /api/v1/openapi.json: the OpenAPI 3.1 document (no envelope, no auth)."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")  # revalidated by its ETag after upgrades
        self.finish(document_bytes(VERSION))


class DocsHandler(PageHandler):
    """GET /docs: the API reference, Swagger UI rendering the document (static/vendor/)."""

    template = "docs.html"

    def get(self) -> None:
        self.render(self.template, document_url=DOCUMENT_PATH)
