"""Idempotent schema migrations applied at start-up, after the tables are created."""

from __future__ import annotations

import re

import peewee

__all__ = ["ensure_autoincrement", "ensure_column"]

_ROWID_PK = re.compile(r'("id"\s+INTEGER\s+NOT\s+NULL\s+PRIMARY\s+KEY)(?!\s+AUTOINCREMENT)', re.I)


def ensure_autoincrement(database: peewee.Database, table: str) -> bool:
    """Rebuilds a SQLite table so its integer id is AUTOINCREMENT; True if it had to.

    Without AUTOINCREMENT SQLite hands out max(id)+1, so deleting the newest user frees its
    id for the next registration: one user_id would name two people in events, logs and
    client caches. The rebuild keeps every row and id (SQLite's sequence starts after the
    largest), and follows SQLite's documented recipe: foreign keys off, copy, drop, rename.
    PostgreSQL sequences never reuse values, so other databases are left alone.
    """
    if not isinstance(database, peewee.SqliteDatabase):
        return False
    row = database.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if row is None or not _ROWID_PK.search(row[0]):
        return False
    indexes = [r[0] for r in database.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table,)).fetchall()]
    new_sql = _ROWID_PK.sub(r"\1 AUTOINCREMENT", row[0], count=1)
    new_sql = re.sub(rf'^CREATE TABLE\s+(IF NOT EXISTS\s+)?"?{table}"?',
                     f'CREATE TABLE "{table}__new"', new_sql, count=1, flags=re.I)
    database.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        with database.atomic("IMMEDIATE"):
            database.execute_sql(new_sql)
            database.execute_sql(f'INSERT INTO "{table}__new" SELECT * FROM "{table}"')
            database.execute_sql(f'DROP TABLE "{table}"')
            database.execute_sql(f'ALTER TABLE "{table}__new" RENAME TO "{table}"')
            for index in indexes:
                database.execute_sql(index)
            problems = database.execute_sql("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise peewee.IntegrityError(f"foreign key check failed: {problems[:3]}")
    finally:
        database.execute_sql("PRAGMA foreign_keys = ON")
    return True


def ensure_column(database: peewee.Database, table: str, column: str, sql_type: str) -> bool:
    """Adds a nullable column to an existing table if it lacks it; True if it had to."""
    names = {c.name for c in database.get_columns(table)}
    if column in names:
        return False
    database.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {sql_type}')
    return True
