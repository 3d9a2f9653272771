"""Event stores: the protocol, and ``open_store(url)`` to get a backend by URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from facta.store.base import EventStore


async def open_store(url: str, *, create: bool = True, **options: Any) -> EventStore:
    """Open the event store at ``url``, creating its schema if needed.

    ``memory://`` — in process memory; ``sqlite:///relative/path.db`` or
    ``sqlite:////absolute/path.db`` — a SQLite file (query options: ``prefix``,
    ``synchronous``); ``postgresql://user@host:port/db`` — PostgreSQL (query options:
    ``schema``, ``prefix``, ``pool_size``, ``max_flushes``, ``visibility_wait``, ``notify``;
    see PostgresEventStore). Raises ValueError for a URL it cannot use, StoreSetupError for
    a PostgreSQL database or role that does not exist.

    With ``create=False`` nothing is created or migrated (what read-only tools want): a
    SQLite file or PostgreSQL schema that holds no facta store, or one with migrations
    missing, raises StoreSetupError.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(options)
    if parts.scheme == "memory":
        from facta.store.memory import MemoryEventStore

        return MemoryEventStore()
    if parts.scheme == "sqlite":
        from facta.store.sqlite import SQLiteEventStore

        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ValueError(f"no file path in SQLite URL {url!r} (use sqlite:///facta.db)")
        return await SQLiteEventStore.open(path, create=create, **query)
    if parts.scheme in ("postgresql", "postgres"):
        from facta.store.postgres import PostgresEventStore

        return await PostgresEventStore.open(url, create=create, **options)
    raise ValueError(
        f"unknown store URL {url!r}: use memory://, sqlite:///PATH or postgresql://HOST/DB"
    )


__all__ = ["EventStore", "open_store"]
