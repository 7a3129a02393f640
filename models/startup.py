"""Start-up check of the database: can it be reached, before any table or file is written."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import peewee

from models.db import open_database

__all__ = ["database_problem", "sqlite_directory", "describe"]


def sqlite_directory(url: str) -> str | None:
    """Returns the directory a SQLite URL's file lives in (None for PostgreSQL or memory)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return None if path == ":memory:" else os.path.dirname(os.path.abspath(path))


def describe(url: str) -> str:
    """Returns the URL without its password, for messages."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    return url.replace(f":{parsed.password}@", ":***@", 1)


def database_problem(url: str) -> str | None:
    """Returns why a PostgreSQL database cannot be used (its driver's first line), or None.

    Only connects and disconnects: SQLite is not opened here, since opening creates its file.
    """
    if sqlite_directory(url) is not None or url.startswith("sqlite:"):
        return None
    database = open_database(url)
    try:
        database.connect()
        database.execute_sql("SELECT 1")
    except peewee.DatabaseError as exc:
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    finally:
        close_all = getattr(database, "close_all", None)
        if close_all is not None:
            close_all()
        elif not database.is_closed():
            database.close()
    return None
