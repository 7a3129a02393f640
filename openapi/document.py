"""Assembles the OpenAPI 3.1 document from the paths modules and the components."""

from __future__ import annotations

from typing import Any

from openapi import paths_accounts, paths_ops, paths_rooms, paths_server
from openapi.components import components

__all__ = ["build_document", "DOCUMENT_PATH"]

DOCUMENT_PATH = "/api/v1/openapi.json"

DESCRIPTION = """\
The REST API of the events server. Every JSON route answers `{"success": true, "data": ...}`
or the error envelope `{"success": false, "error": {"code", "message"}}` (a
`validation_error` adds `fields`, naming each invalid field); `/health`, `/metrics`,
`/ws/stats` and `/ws/broadcast` answer without the envelope. Bodies are JSON objects of at
most 1 MiB; unknown fields are refused.

Users authenticate with `Authorization: Bearer <access token>` (from register or login); the
server API (`/api/v1/server/...`) with an API key (`X-API-Key: <key>` or
`Authorization: Apikey <key>`).

The live streams are not REST: `GET /ws?token=...` (WebSocket: events, rooms, presence,
recovery after a reconnect; docs/websocket.md) and `GET /sse?token=...` (the same events as
Server-Sent Events; docs/sse.md)."""

TAGS = [
    {"name": "Accounts", "description": "Register, log in, rotate and revoke sessions."},
    {"name": "Users", "description": "Your profile and password; admin user management."},
    {"name": "Rooms", "description": "Rooms (`room:<name>` channels), members, messages."},
    {"name": "API keys", "description": "Keys for the server API (admins)."},
    {"name": "Server API", "description": "For the application's other services, with an "
                                          "API key."},
    {"name": "Operations", "description": "Hub stats and broadcast, health, metrics."},
]


def build_document(version: str) -> dict[str, Any]:
    """Returns the whole document for a server of this version."""
    paths: dict[str, Any] = {}
    for module in (paths_accounts, paths_rooms, paths_server, paths_ops):
        paths.update(module.paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Events server REST API", "version": version,
                 "description": DESCRIPTION},
        "servers": [{"url": "/", "description": "this server"}],
        "tags": TAGS,
        "paths": paths,
        "components": components(),
    }
