"""Consistency boundaries in memory: reads by query from the log (or its tag index), and
conditional appends checked and written without an await in between, so atomic on the loop."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence

from facta.store.base import AppendResult, NewEvent, Position, RecordedEvent
from facta.store.boundaries import (
    AppendCondition,
    Query,
    TaggedEvents,
    follow_query,
    own_stream,
    tag_events,
)
from facta.store.memory.events import MemoryEventStore


class MemoryBoundaries:
    """The :class:`~facta.store.boundaries.BoundaryStore` of a memory engine."""

    def __init__(self, events: MemoryEventStore) -> None:
        self._events = events

    async def read(
        self, query: Query, *, after: Position | None = None, limit: int | None = None
    ) -> TaggedEvents:
        start = 0 if after is None else after.sequence
        found = list(itertools.islice(self._events.matching(query, start), limit))
        return TaggedEvents(found, found[-1].position if found else after)

    async def append(
        self,
        events: Sequence[NewEvent],
        condition: AppendCondition | None = None,
        *,
        stream_id: str | None = None,
    ) -> AppendResult:
        events = tag_events(events)
        return self._events.append_if(stream_id or own_stream(events), events, condition)

    def subscribe(
        self, query: Query, *, after: Position | None = None, batch_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        return follow_query(self, self._events, query, after=after, batch_size=batch_size)
