"""The User model: identity, role, password hash and token version."""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee

from models.db import BaseModel

__all__ = ["User", "ROLES", "ADMIN_ROLES", "utcnow", "rfc3339"]

ROLES = ("user", "admin", "superadmin")
ADMIN_ROLES = frozenset({"admin", "superadmin"})


def utcnow() -> dt.datetime:
    """Returns the current UTC time without microseconds, as stored in the database."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)


class User(BaseModel):
    """A registered account; email is stored lower-cased so uniqueness ignores case."""

    name = peewee.CharField(max_length=100)
    email = peewee.CharField(max_length=254, unique=True)
    password_hash = peewee.CharField(max_length=255)
    age = peewee.IntegerField(null=True)
    role = peewee.CharField(max_length=20, default="user", index=True)
    # Bumped by a password change or deletion: tokens carrying an older value are refused.
    token_version = peewee.IntegerField(default=1)
    # The identity provider's `sub` for a user it signs in (services/external.py); such a
    # user has no password here. None for a local account.
    external_id = peewee.CharField(max_length=255, null=True, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "users"

    @property
    def is_admin(self) -> bool:
        """Tells whether this user holds an admin role."""
        return self.role in ADMIN_ROLES

    @property
    def external(self) -> bool:
        """Tells whether an identity provider signs this user in (no password here)."""
        return self.external_id is not None

    def to_public(self) -> dict[str, Any]:
        """Returns the fields a client may see (never the hash or token version)."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "age": self.age,
            "role": self.role,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            # Only on an identity provider's users, so a local account's shape is unchanged.
            **({"external": True} if self.external_id is not None else {}),
        }


def rfc3339(value: dt.datetime) -> str:
    """Formats a naive UTC datetime as RFC 3339 with a Z suffix."""
    return value.replace(microsecond=0).isoformat() + "Z"
