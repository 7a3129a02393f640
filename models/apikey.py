"""API keys (stored as hashes only) and the answers of idempotent server API requests."""

from __future__ import annotations

from typing import Any

import peewee

from models.db import BaseModel
from models.user import rfc3339, utcnow

__all__ = ["ApiKey", "IdempotentRequest"]


class ApiKey(BaseModel):
    """A key an application's other services call the server API with.

    Only the SHA-256 of the key is stored: a key is 32 random bytes, so a fast hash is as
    strong as a slow one, and a lookup by hash is one indexed read.
    """

    name = peewee.CharField(max_length=100)
    key_hash = peewee.CharField(max_length=64, unique=True)
    scopes = peewee.CharField(max_length=200)  # comma-separated, from auth.apikeys.SCOPES
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "api_keys"

    @property
    def scope_list(self) -> list[str]:
        """The key's scopes, in the order they were given."""
        return [s for s in self.scopes.split(",") if s]

    def to_public(self) -> dict[str, Any]:
        """Returns what a listing shows (never the key, never its hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": self.scope_list,
            "created_at": rfc3339(self.created_at),
            "last_used_at": rfc3339(self.last_used_at) if self.last_used_at else None,
        }


class IdempotentRequest(BaseModel):
    """A notify or publish made with an Idempotency-Key: what it published and its answer.

    The row is inserted before anything is published, in the transaction of the outbox row
    it reports (notify) or before the publish (publish): the unique (key, idempotency key)
    pair makes a retry find it instead of publishing again, on any node, after a restart.
    """

    api_key = peewee.ForeignKeyField(ApiKey, on_delete="CASCADE")
    key = peewee.CharField(max_length=255)
    route = peewee.CharField(max_length=16)  # notify | publish
    request_hash = peewee.CharField(max_length=64)  # SHA-256 of the request body
    ref = peewee.CharField(max_length=64)  # the outbox event id or the room message id
    answer = peewee.TextField(null=True)  # the first answer's JSON data, once known
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "idempotent_requests"
        indexes = ((("api_key", "key"), True),)
