"""A SQLite store's schema: the migrations a file has (read without changing it), and
applying those it lacks."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from facta.errors import StoreSetupError
from facta.store._migrations import migration_files, statements


def applied_migrations(path: str, prefix: str) -> set[int] | None:
    """The migrations recorded in the SQLite file at ``path`` (None: it has no migrations
    table), read without creating or changing anything; StoreSetupError if there is no
    SQLite database there."""
    if not os.path.isfile(path):
        raise StoreSetupError(f"no SQLite file at {path!r}", "create a store with `facta migrate`")
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            table = f"{prefix}schema_migrations"
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if found is None:
                return None
            return {row[0] for row in connection.execute(f"SELECT version FROM {table}")}
    except sqlite3.DatabaseError as exc:
        raise StoreSetupError(
            f"{path!r} is not a SQLite database ({exc})", "check the path of the store"
        ) from None


def migrate(connection: sqlite3.Connection, prefix: str) -> list[int]:
    """Apply the migrations the file lacks, each in a write transaction of its own with its
    record in ``{prefix}schema_migrations``; the versions applied."""
    table = f"{prefix}schema_migrations"
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {table}"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    applied = []
    for version, name, sql in migration_files("facta.store.sqlite"):
        connection.execute("BEGIN IMMEDIATE")
        try:
            done = connection.execute(
                f"SELECT 1 FROM {table} WHERE version = ?", (version,)
            ).fetchone()
            if not done:
                for statement in statements(sql, prefix=prefix):
                    connection.execute(statement)
                connection.execute(
                    f"INSERT INTO {table} VALUES (?, ?, ?)", (version, name, time.time())
                )
                applied.append(version)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return applied
