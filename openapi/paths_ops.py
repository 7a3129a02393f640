"""Paths of operating the server: hub stats and broadcast, health, metrics, this document."""

from __future__ import annotations

from typing import Any

from openapi.build import (
    BEARER,
    PUBLIC,
    body,
    integer,
    obj,
    operation,
    ref,
    success,
    text,
)

__all__ = ["paths"]

TAG = "Operations"


def _hub() -> dict[str, Any]:
    """Returns /ws/stats and /ws/broadcast (their answers have no envelope, as in the seed)."""
    alert = obj({"message": text("1-4096 characters, no NUL", minLength=1, maxLength=4096),
                 "priority": {"enum": ["low", "normal", "high", "critical"]},
                 "metadata": {"type": ["object", "null"],
                              "description": "at most 16 KiB of JSON"}},
                required=("message",))
    sent = obj({"success": {"const": True}, "message": {"const": "Broadcast sent successfully"},
                "recipients": integer("this node's sockets that received it at once",
                                      minimum=0),
                "stats": ref("HubStats")})
    stats = ref("Stats")
    return {
        "/ws/stats": {"get": operation(
            "getStats", TAG, "Hub statistics",
            "The hub's counters (summed over the cluster, each node in `nodes`), this "
            "node's `delivery` numbers and the `webhooks` queue; the object itself, without "
            "the envelope (admins).",
            security=BEARER, errors=(401, 403, 503),
            responses={"200": success("The stats object.", stats, enveloped=False)})},
        "/ws/broadcast": {"post": operation(
            "broadcast", TAG, "Broadcast a system alert",
            "Sends `system.alert` to every connection (admins). The answer has no envelope.",
            security=BEARER, errors=(400, 401, 403, 413, 503),
            request_body=body(alert, {"message": "Test broadcast", "priority": "normal"}),
            responses={"200": success("Sent.", sent, enveloped=False)})},
    }


def _service() -> dict[str, Any]:
    """Returns /health, /metrics and the document's own path."""
    health = ref("Health")
    metrics = {"description": "Every metric in the Prometheus text format.",
               "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "/health": {"get": operation(
            "health", TAG, "Health check",
            "Checks the database on each call; no envelope. `degraded` (Redis unreachable "
            "in a cluster) is still 200.", security=PUBLIC, errors=(),
            responses={"200": success("Serving.", health, enveloped=False),
                       "503": success("The database fails or does not answer in 3 s.",
                                      health, enveloped=False)})},
        "/metrics": {"get": operation(
            "metrics", TAG, "Prometheus metrics",
            "Served without a token to addresses in `--metrics-allow` (loopback by default), "
            "else to an admin's token; 404 with `--metrics=off` or `--metrics-port`.",
            security=[*BEARER, {}], errors=(401, 403, 404, 503),
            responses={"200": metrics})},
        "/api/v1/openapi.json": {"get": operation(
            "openapi", TAG, "This document",
            "The REST API as an OpenAPI 3.1 document; /docs renders it.", security=PUBLIC,
            errors=(), responses={"200": {"description": "The OpenAPI document.",
                                          "content": {"application/json": {"schema": {
                                              "type": "object"}}}}})},
    }


def paths() -> dict[str, Any]:
    """Returns the operations paths."""
    return {**_hub(), **_service()}
