"""Binds the database proxy and runs blocking database work on a bounded thread pool."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import peewee
from playhouse.pool import PooledPostgresqlDatabase

__all__ = ["db", "init_db", "create_tables", "drop_tables", "Runner", "BaseModel"]

T = TypeVar("T")

# Bound by init_db() at start-up; tests bind their own database.
db = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    """Base class binding every model to the shared proxy."""

    class Meta:
        database = db


def _open(url: str) -> peewee.Database:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return peewee.SqliteDatabase(
            path,
            pragmas={"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000},
            check_same_thread=False,
        )
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"unsupported database URL scheme {parsed.scheme!r}")
    return PooledPostgresqlDatabase(
        unquote(parsed.path.lstrip("/")) or "postgres",
        user=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        max_connections=32,
        stale_timeout=300,
    )


def _models() -> list[type[peewee.Model]]:
    from models.token import RefreshToken, Session
    from models.user import User

    return [User, Session, RefreshToken]


def init_db(url: str) -> peewee.Database:
    """Opens the database at url, binds the proxy to it and creates missing tables."""
    database = _open(url)
    db.initialize(database)
    create_tables()
    return database


def create_tables() -> None:
    """Creates every model's table if it does not exist."""
    with db.connection_context():
        db.create_tables(_models(), safe=True)


def drop_tables() -> None:
    """Drops every model's table (tests use this for clean tables)."""
    with db.connection_context():
        db.drop_tables(_models(), safe=True)


class Runner:
    """Runs blocking callables (database work, password hashing) on a bounded thread pool."""

    def __init__(self, max_workers: int = 4) -> None:
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="db")

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs fn(*args, **kwargs) in the pool inside a database connection context."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, functools.partial(_in_connection, fn, *args, **kwargs)
        )

    def shutdown(self) -> None:
        """Stops the pool after the running jobs finish."""
        self.executor.shutdown(wait=True, cancel_futures=True)


def _in_connection(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with db.connection_context():
        return fn(*args, **kwargs)
