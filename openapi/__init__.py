"""The REST API as an OpenAPI 3.1 document, built as data (served at /api/v1/openapi.json)."""

from __future__ import annotations

from openapi.document import DOCUMENT_PATH, build_document

__all__ = ["DOCUMENT_PATH", "build_document"]
