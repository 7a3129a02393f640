"""Login sessions and their rotating refresh tokens."""

from __future__ import annotations

import peewee

from models.db import BaseModel
from models.user import User, utcnow

__all__ = ["Session", "RefreshToken"]


class Session(BaseModel):
    """One login: a family of refresh tokens; revoking it ends the login everywhere."""

    id = peewee.CharField(primary_key=True, max_length=36)
    user = peewee.ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    created_at = peewee.DateTimeField(default=utcnow)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "sessions"

    @property
    def active(self) -> bool:
        """Tells whether the session has not been revoked."""
        return self.revoked_at is None


class RefreshToken(BaseModel):
    """One issued refresh token; used once, then replaced by its successor."""

    jti = peewee.CharField(primary_key=True, max_length=36)
    session = peewee.ForeignKeyField(Session, backref="tokens", on_delete="CASCADE")
    expires_at = peewee.DateTimeField()
    used_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "refresh_tokens"
