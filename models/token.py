"""Login sessions and their rotating refresh tokens."""

from __future__ import annotations

import weakref
from typing import Any

import peewee

from models.db import BaseModel, db
from models.user import User, utcnow

__all__ = ["Session", "RefreshToken", "session_principal"]


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


# The statement session_principal() runs, with its parameters, built once per database.
_PRINCIPAL_SQL: weakref.WeakKeyDictionary[peewee.Database, tuple[str, list[Any]]] = (
    weakref.WeakKeyDictionary())


def session_principal(session_id: str) -> tuple[Any, int, str, str, int] | None:
    """Returns (revoked_at, user id, name, role, token_version) for a session and its user,
    or None if there is no such session (blocking; on the database pool).

    Every authentication that misses the session cache asks this, so peewee builds the
    statement once per database and later calls only execute it with the new id: building
    it measured about 20x the cost of running it on SQLite (150 vs 7 us).
    """
    database = db.obj
    built = _PRINCIPAL_SQL.get(database)
    if built is None:
        query = (Session.select(Session.revoked_at, User.id, User.name, User.role,
                                User.token_version)
                 .join(User).where(Session.id == "").limit(1))
        sql, params = query.sql()
        built = _PRINCIPAL_SQL[database] = (sql, params)
    sql, params = built
    return database.execute_sql(sql, [session_id, *params[1:]]).fetchone()
