"""Paths of the server API (/api/v1/server, with an API key) and of API key management."""

from __future__ import annotations

from typing import Any

from openapi.build import (
    API_KEY,
    BEARER,
    body,
    header_param,
    integer,
    link,
    obj,
    operation,
    path_param,
    query_param,
    ref,
    string,
    success,
    trimmed_text,
)
from openapi.components import ROOM_CHANNEL, SCOPES, TIMESTAMP

__all__ = ["paths"]

SERVER = "Server API"
KEYS = "API keys"
OFFSET = string(pattern="^[0-9]+$")
IDEMPOTENCY = header_param(
    "Idempotency-Key", string(minLength=1, maxLength=255, pattern="^[!-~]([ -~]*[!-~])?$"),
    "1-255 printable characters: a retry with the same key (and body) within 24 hours "
    "answers the first answer and publishes nothing again", "order-1042-shipped")
CHANNEL = query_param("channel", ROOM_CHANNEL, "the room's channel", True, "room:lobby")
ERRORS = (400, 401, 403, 404, 413, 429, 503)
USER_ID = integer(minimum=1, maximum=999_999_999_999_999_999)


def _notify() -> dict[str, Any]:
    """Returns the notify operation."""
    audience = {"user_id": USER_ID, "role": {"enum": ["user", "admin", "superadmin"]},
                "all": {"const": True}}
    request = obj({"type": string("`app.<name>`", pattern="^app\\.[A-Za-z0-9_.:-]{1,64}$"),
                   "data": {"type": "object", "description": "at most 64 KiB of JSON"},
                   **audience}, required=("type",))
    request["oneOf"] = [{"required": [key]} for key in audience]
    answer = obj({"offset": OFFSET, "epoch": string(),
                  "recipients": integer("sockets of this node that received it (memory "
                                        "broker only)", minimum=0)},
                 required=("offset", "epoch"))
    return operation(
        "notify", SERVER, "Notify a user, a role or everyone",
        "Sends an `app.*` feed event to exactly one audience: `user_id`, `role` or `all`. "
        "The event is logged, so reconnecting clients recover it.",
        security=API_KEY, errors=(*ERRORS, 409), parameters=[IDEMPOTENCY],
        request_body=body(request, {"type": "app.order.shipped", "data": {"order": 1042},
                                    "user_id": 1}),
        responses={"200": success("The event's position in the feed.", answer)})


def _server() -> dict[str, Any]:
    """Returns the /api/v1/server paths."""
    published = obj({"id": string(), "sent_at": TIMESTAMP,
                     "offset": {"type": ["string", "null"], "pattern": "^[0-9]+$"},
                     "channel": ROOM_CHANNEL, "epoch": string()})
    publish = obj({"channel": ROOM_CHANNEL,
                   "data": {"type": "object", "description": "at most 16 KiB of JSON"}})
    history_params = [CHANNEL,
                      query_param("since", string(pattern="^[0-9]{0,18}$"),
                                  "messages after this offset (default: from the oldest)"),
                      query_param("limit", integer(minimum=1, maximum=1000),
                                  "at most this many (default 100)")]
    history = obj({"channel": ROOM_CHANNEL, "epoch": string(),
                   "messages": {"type": "array", "items": ref("StoredMessage")}})
    presence = obj({"channel": ROOM_CHANNEL, "members": {"type": "array", "items": obj(
        {"user_id": integer(minimum=1), "name": string()})}})
    return {
        "/api/v1/server/notify": {"post": _notify()},
        "/api/v1/server/publish": {"post": operation(
            "serverPublish", SERVER, "Publish to a room",
            "A room message from the application (`from: {\"api_key\": <name>}`), stored and "
            "numbered like a member's.", security=API_KEY, errors=(*ERRORS, 409),
            parameters=[IDEMPOTENCY],
            request_body=body(publish, {"channel": "room:lobby",
                                        "data": {"text": "deploy finished"}}),
            responses={"200": success("The message as sent.", published)})},
        "/api/v1/server/presence": {"get": operation(
            "serverPresence", SERVER, "Who is in a room", "Users present, on every node.",
            security=API_KEY, errors=ERRORS, parameters=[CHANNEL],
            responses={"200": success("The room's members present.", presence)})},
        "/api/v1/server/history": {"get": operation(
            "serverHistory", SERVER, "A room's messages after an offset",
            "Oldest first; pass the last message's `offset` as the next `since`.",
            security=API_KEY, errors=ERRORS, parameters=history_params,
            responses={"200": success("Messages and the stream's epoch.", history)})},
        "/api/v1/server/disconnect": {"post": operation(
            "serverDisconnect", SERVER, "Disconnect a user",
            "Closes every socket of the user, on every node, with 1008.", security=API_KEY,
            errors=ERRORS, request_body=body(obj({"user_id": USER_ID}), {"user_id": 1}),
            responses={"200": success("Sockets closed on this node.", obj({
                "disconnected": integer(minimum=0)}))})},
    }


def _keys() -> dict[str, Any]:
    """Returns the admin API key paths."""
    scopes = {"type": "array", "items": {"enum": SCOPES}, "minItems": 1}
    create = obj({"name": trimmed_text("1-100 characters once trimmed, no NUL", 100, "\\u0000"),
                  "scopes": {**scopes, "description": "default: all five"}},
                 required=("name",))
    created = obj({"id": integer(minimum=1), "name": string(), "scopes": scopes,
                   "key": string("the key, shown this once", pattern="^evk_")})
    key_id = path_param("id", integer(minimum=1, maximum=999_999_999_999_999_999),
                        "the key's id", 2)
    return {
        "/api/v1/admin/api-keys": {
            "get": operation("listApiKeys", KEYS, "List API keys", "Every key (admins).",
                             security=BEARER, errors=(401, 403, 503),
                             responses={"200": success("The keys.", {
                                 "type": "array", "items": ref("ApiKey")})}),
            "post": operation(
                "createApiKey", KEYS, "Create an API key",
                "Scopes default to all five. The key is in the answer, and only there.",
                security=BEARER, errors=(400, 401, 403, 413, 503),
                request_body=body(create, {"name": "billing", "scopes": ["notify", "publish"]}),
                responses={"201": success("The new key.", created, links={"RevokeApiKey": link(
                    "revokeApiKey", "Revokes the key just created.",
                    {"path.id": "$response.body#/data/id"})})})},
        "/api/v1/admin/api-keys/{id}": {"delete": operation(
            "revokeApiKey", KEYS, "Revoke an API key",
            "Refused at once on every node of a cluster (admins).", security=BEARER,
            errors=(401, 403, 404, 503), parameters=[key_id],
            responses={"200": success("Revoked.", obj({"id": integer(minimum=1),
                                                       "revoked": {"const": True}}))})},
    }


def paths() -> dict[str, Any]:
    """Returns the server API and API key paths."""
    return {**_keys(), **_server()}
