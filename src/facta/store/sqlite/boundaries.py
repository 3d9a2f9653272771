"""Consistency boundaries on SQLite: reads by query through the tag index, and conditional
appends checked inside the append's transaction.

Correct by construction: SQLite has one writer at a time, and the condition is checked and
the events written under that one write lock, so nothing can commit between the check and
the write; appends with disjoint conditions only ever wait for each other's commit, as all
of SQLite's writers do (and share it, when they arrive together: group commit).
"""

from __future__ import annotations

from facta.store.base import Position
from facta.store.boundaries import Query, TaggedEvents, TaggedLog
from facta.store.sqlite.events import SQLiteEventStore
from facta.store.sqlite.tags import TagSQL
from facta.store.sqlite.writes import COLUMNS, recorded


class SQLiteBoundaries(TaggedLog):
    """The :class:`~facta.store.boundaries.BoundaryStore` of a SQLite engine."""

    def __init__(self, events: SQLiteEventStore) -> None:
        super().__init__(events)
        self._events = events
        self._sql = TagSQL(events.prefix)

    async def read(
        self, query: Query, *, after: Position | None = None, limit: int | None = None
    ) -> TaggedEvents:
        start = 0 if after is None else after.sequence
        sql, parameters = self._sql.matching(COLUMNS, query, start, limit)
        found = recorded(await self._events.rows(sql, parameters))
        return TaggedEvents(found, found[-1].position if found else after)
