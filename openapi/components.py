"""The document's components: the objects the API answers with, error responses and security."""

from __future__ import annotations

from typing import Any

from openapi.build import integer, json_content, nullable, obj, ref, string

__all__ = ["components", "TIMESTAMP", "ROOM_NAME", "ROOM_CHANNEL", "SCOPES"]

Schema = dict[str, Any]

TIMESTAMP = string("RFC 3339 UTC time", format="date-time")
ROOM_NAME = string("1-64 of a-z, 0-9, `_`, `.`, `-`", pattern="^[a-z0-9_.-]{1,64}$")
ROOM_CHANNEL = string("`room:<name>`", pattern="^room:[a-z0-9_.-]{1,64}$")
ROLE = {"type": "string", "enum": ["user", "admin", "superadmin"]}
SCOPES = ["publish", "notify", "presence", "history", "disconnect"]
OFFSET = string("a position in the stream, as the events carry it", pattern="^[0-9]+$")
EPOCH = string("the stream's epoch: changes when its log is lost")
COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}

ERROR_CODES = (
    "`validation_error` (with `fields`), `bad_request`, `unauthorized`, `invalid_api_key`, "
    "`forbidden`, `insufficient_scope`, `not_found`, `unknown_channel`, `method_not_allowed`, "
    "`conflict`, `idempotency_key_reused`, `idempotency_in_progress`, `payload_too_large`, "
    "`too_large`, `rate_limited`, `unavailable`, `database_unavailable`, `database_busy`")


def _schemas() -> dict[str, Schema]:
    """Returns components/schemas."""
    sender = {"oneOf": [obj({"user_id": nullable(integer()), "name": string()},
                            description="a user (user_id null once the account is deleted)"),
                        obj({"api_key": string()},
                            description="the server API, by the key's name")]}
    node = obj({"node": string("the node's id"), "total_clients": integer(minimum=0),
                "by_transport": ref("Transports"), "by_role": COUNTS,
                "unique_users": integer(minimum=0), "messages_delivered": integer(minimum=0),
                "events_published": integer(minimum=0),
                "slow_consumers_dropped": integer(minimum=0), "timestamp": TIMESTAMP})
    stats_fields = {k: v for k, v in node["properties"].items() if k != "node"}
    return {
        "Error": obj({"success": {"const": False}, "error": ref("ErrorDetail")},
                     description="The error envelope every JSON route answers a failure with."),
        "ErrorDetail": obj(
            {"code": string(f"stable, for programs: {ERROR_CODES}"),
             "message": string("for a person: what is wrong and what to change"),
             "fields": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "validation_error only: each invalid field and what "
                                       "is wrong with it (`required` when missing)"}},
            required=("code", "message")),
        "User": obj({"id": integer(minimum=1), "name": string(), "email": string(),
                     "age": nullable(integer(minimum=0, maximum=150)), "role": ROLE,
                     "created_at": TIMESTAMP, "updated_at": TIMESTAMP,
                     "external": {"const": True, "description": "signed in by an identity "
                                  "provider (no password here); absent otherwise"}},
                    required=("id", "name", "email", "age", "role", "created_at",
                              "updated_at")),
        "TokenBundle": obj({"access_token": string("JWT for `Authorization: Bearer`"),
                            "refresh_token": string("JWT for POST /api/v1/auth/refresh"),
                            "token_type": {"const": "Bearer"},
                            "expires_in": integer("access token lifetime, seconds", minimum=1),
                            "user": ref("User")}),
        "UserPage": obj({"users": {"type": "array", "items": ref("User")},
                         "page": integer(minimum=1), "per_page": integer(minimum=1),
                         "total": integer(minimum=0), "pages": integer(minimum=0)}),
        "Room": obj({"name": ROOM_NAME, "channel": ROOM_CHANNEL, "title": string(),
                     "private": {"type": "boolean"}, "owner_id": nullable(integer()),
                     "created_at": TIMESTAMP,
                     "subscribers": integer("sockets subscribed now", minimum=0),
                     "online": integer("distinct users present", minimum=0)},
                    required=("name", "channel", "title", "private", "owner_id",
                              "created_at")),
        "Member": obj({"user_id": integer(minimum=1), "name": string(),
                       "owner": {"type": "boolean"}, "added_at": TIMESTAMP}),
        "Sender": sender,
        "StoredMessage": obj({"id": string("time-ordered id"), "from": ref("Sender"),
                              "body": {"type": "object", "description": "the data published"},
                              "sent_at": TIMESTAMP, "offset": nullable(OFFSET)}),
        "MessageSent": obj({"channel": ROOM_CHANNEL, "id": string(), "sent_at": TIMESTAMP,
                            "offset": nullable(OFFSET)}),
        "ApiKey": obj({"id": integer(minimum=1), "name": string(),
                       "scopes": {"type": "array", "items": {"enum": SCOPES}},
                       "created_at": TIMESTAMP, "last_used_at": nullable(TIMESTAMP)}),
        "Transports": obj({"websocket": integer(minimum=0), "sse": integer(minimum=0)}),
        "NodeStats": node,
        "HubStats": obj({**stats_fields, "nodes": {"type": "array",
                                                  "items": ref("NodeStats")}},
                        description="The hub's counters, summed over the cluster's nodes."),
        "Stats": obj({**stats_fields, "nodes": {"type": "array", "items": ref("NodeStats")},
                      "delivery": ref("Delivery"), "webhooks": ref("Webhooks")},
                     description="The hub's counters, summed over the cluster's nodes, and "
                                 "this node's delivery numbers and the webhook queue for the "
                                 "dashboard."),
        "Webhooks": obj({"enabled": {"type": "boolean"},
                         "queued": integer("webhooks waiting, every node's", minimum=0),
                         "oldest_age_s": {"type": "number", "minimum": 0},
                         "delivered": integer(minimum=0), "failed": integer(minimum=0),
                         "dropped": integer(minimum=0)}, required=("enabled",),
                        description="The webhook queue (docs/hooks.md); only `enabled: false` "
                                    "without --webhook-url."),
        "Delivery": obj({"window_seconds": {"type": "number"}, "publishes": integer(minimum=0),
                         "latency_ms": obj({q: {"type": "number"}
                                            for q in ("p50", "p95", "p99", "max")}),
                         "closes": COUNTS}),
        "Health": obj({"status": {"enum": ["ok", "degraded", "error"]},
                       "checks": {"type": "object", "properties": {
                           "database": {"enum": ["ok", "error"]},
                           "redis": {"enum": ["ok", "error"]}},
                           "required": ["database"], "additionalProperties": False}}),
    }


def _error(description: str, example: dict[str, Any], retry: bool = False) -> dict[str, Any]:
    """Returns an error response with the error envelope (and Retry-After when it applies)."""
    response: dict[str, Any] = {
        "description": description,
        "content": json_content(ref("Error"), {"success": False, "error": example})}
    if retry:
        response["headers"] = {"Retry-After": {
            "description": "seconds to wait before retrying", "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return response


def _responses() -> dict[str, Any]:
    """Returns components/responses: one per error status."""
    return {
        "BadRequest": _error(
            "`validation_error`: a field is missing, mistyped, out of range or not allowed "
            "(`fields` names each one); `bad_request`: the body is empty, not JSON or nested "
            "deeper than 32 levels.",
            {"code": "validation_error", "message": "email is required",
             "fields": {"email": "required"}}),
        "Unauthorized": _error(
            "`unauthorized`: no token, a bad, expired or revoked one, wrong credentials; "
            "`invalid_api_key` on the server API.",
            {"code": "unauthorized", "message": "missing bearer token: send "
                                                "'Authorization: Bearer <token>'"}),
        "Forbidden": _error(
            "`forbidden`: authenticated but not allowed (not an admin, role or room rules); "
            "`insufficient_scope`: the API key lacks the route's scope.",
            {"code": "forbidden", "message": "admin access required"}),
        "NotFound": _error("`not_found` (or `unknown_channel`): no such resource.",
                           {"code": "not_found", "message": "user 7 not found"}),
        "Conflict": _error(
            "`conflict`: clashes with existing data (an email or room name taken, already a "
            "member); `idempotency_key_reused`, `idempotency_in_progress` on the server API.",
            {"code": "conflict", "message": "an account with this email already exists"}),
        "PayloadTooLarge": _error(
            "`payload_too_large`: the body is over 1 MiB (refused before it is read).",
            {"code": "payload_too_large",
             "message": "request body is larger than the 1 MiB limit"}),
        "RateLimited": _error("`rate_limited`: too many attempts; wait `Retry-After` seconds.",
                              {"code": "rate_limited", "message": "too many attempts; try "
                                                                  "again in 30 seconds"},
                              retry=True),
        "Unavailable": _error(
            "`database_unavailable`, `database_busy` or `unavailable`: retry after "
            "`Retry-After` seconds.",
            {"code": "database_unavailable", "message": "the database is unavailable"},
            retry=True),
    }


def _security() -> dict[str, Any]:
    """Returns components/securitySchemes."""
    return {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                       "description": "An access token from register, login, refresh or a "
                                      "password change (or an identity provider's token)."},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                   "description": "Server API: a key from `events-server api-key create` or "
                                  "POST /api/v1/admin/api-keys."},
        "apiKeyAuthorization": {"type": "http", "scheme": "Apikey",
                                "description": "Server API: the same key as "
                                               "`Authorization: Apikey <key>`."},
    }


def components() -> dict[str, Any]:
    """Returns the document's components."""
    return {"schemas": _schemas(), "responses": _responses(), "securitySchemes": _security()}
