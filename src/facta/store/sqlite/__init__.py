"""The SQLite engine (``sqlite:///PATH``): the embedded default, one file, no server.

The event store, snapshots, read models and relay checkpoints all live in the one file; see
:mod:`facta.store.sqlite.events` for durability and concurrency.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from facta.store.engine import (
    Boundaries,
    Browsing,
    Engine,
    Erasure,
    InlineTransactions,
    PersonalData,
    Snapshots,
)
from facta.store.sqlite.boundaries import SQLiteBoundaries
from facta.store.sqlite.browse import SQLiteBrowser
from facta.store.sqlite.checkpoints import SQLiteCheckpoints
from facta.store.sqlite.connections import Connections, connect
from facta.store.sqlite.erasure import SQLiteEraser
from facta.store.sqlite.events import SQLiteEventStore
from facta.store.sqlite.hooks import SQLiteTransaction
from facta.store.sqlite.keys import SQLiteKeys
from facta.store.sqlite.read_models import SQLiteReadModels


class SQLiteEngine(Engine):
    """Every storage contract in one SQLite file."""

    name = "sqlite"

    def __init__(self, url: str, events: SQLiteEventStore) -> None:
        self.store = events
        self._connections = Connections(events.path, events.synchronous)
        checkpoints = SQLiteCheckpoints(self._connections, events.prefix)
        super().__init__(
            url,
            events=events,
            read_models=SQLiteReadModels(self._connections, events.prefix),
            relay_checkpoints=checkpoints,
            capabilities={
                Snapshots: events,
                InlineTransactions: events,
                Boundaries: SQLiteBoundaries(events),
                Browsing: SQLiteBrowser(events, checkpoints),
                PersonalData: SQLiteKeys(self._connections, events.prefix),
                Erasure: SQLiteEraser(self._connections, events.prefix),
            },
        )

    @property
    def path(self) -> str:
        """The database file."""
        return self.store.path

    @property
    def synchronous(self) -> str:
        """The durability setting: FULL (the default), NORMAL, EXTRA or OFF."""
        return self.store.synchronous

    @property
    def prefix(self) -> str:
        """The prefix of the engine's table names."""
        return self.store.prefix

    async def migrate(self) -> list[int]:
        """Apply the migrations this file lacks; returns the versions applied."""
        return await self.store.migrate()

    async def close(self) -> None:
        """Close the components, then the connections they shared."""
        try:
            await super().close()
        finally:
            await self._connections.close()


async def open_engine(url: str, *, create: bool = True, **options: Any) -> SQLiteEngine:
    """Open the SQLite file ``url`` names (``sqlite:///relative.db``,
    ``sqlite:////absolute.db``); query options and keyword ``options``: ``prefix``,
    ``synchronous``. With ``create``, the file and schema are made or migrated as needed."""
    parts = urlsplit(url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ValueError(f"no file path in SQLite URL {url!r} (use sqlite:///facta.db)")
    query: dict[str, Any] = dict(parse_qsl(parts.query))
    query.update(options)
    return SQLiteEngine(url, await SQLiteEventStore.open(path, create=create, **query))


__all__ = ["SQLiteEngine", "SQLiteEventStore", "SQLiteTransaction", "connect", "open_engine"]
