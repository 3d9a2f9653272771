"""Consistency boundaries in memory: reads by query from the log (or its tag index), and
conditional appends checked and written without an await in between, so atomic on the loop."""

from __future__ import annotations

import itertools

from facta.store.base import Position
from facta.store.boundaries import Query, TaggedEvents, TaggedLog
from facta.store.memory.events import MemoryEventStore


class MemoryBoundaries(TaggedLog):
    """The :class:`~facta.store.boundaries.BoundaryStore` of a memory engine."""

    def __init__(self, events: MemoryEventStore) -> None:
        super().__init__(events)
        self._events = events

    async def read(
        self, query: Query, *, after: Position | None = None, limit: int | None = None
    ) -> TaggedEvents:
        start = 0 if after is None else after.sequence
        found = list(itertools.islice(self._events.matching(query, start), limit))
        return TaggedEvents(found, found[-1].position if found else after)
