"""An engine's event store that reads archived events through, as if they were still there.

:meth:`~facta.store.engine.Engine.use_archive` puts this in front of the engine's own event
store (and under the personal-data wrappers, so archived personal fields are opened, or
redacted, like any other). Appends pass through untouched. Reads cost nothing more while
nothing they ask for is archived:

- a stream read looks in the archive only when what the engine returned starts after the
  version asked for (the archiver always leaves a stream's last event in the engine, so a
  stream with archived events is never empty there), or is empty for a bounded range;
- a read of the log looks in the archive only when a chunk holds events after the position;
  the engine is read first and the index after, so an event the archiver is moving is seen
  in one place or the other, never in neither (seen in both, it is returned once).

- finding an event by id looks in the archive only when the engine has no such event and
  the index has the id's hash (an indexed query, on the loop);
- an append whose first event id is archived is a repeat: it gets the first append's result
  (or DuplicateEventId), as a repeat of events still in the engine does, so an idempotent
  command retried after its events were archived does not run again.

Not read through: consistency-boundary queries (the archiver leaves tagged events in the
engine).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from facta.archive.cold import ChunkInfo, ColdStore
from facta.errors import DuplicateEventId
from facta.store._follow import follow
from facta.store.base import (
    ANY,
    START,
    AppendResult,
    EventStore,
    ExpectedVersion,
    NewEvent,
    Position,
    RecordedEvent,
    TransactionHook,
    category_of,
)

if TYPE_CHECKING:  # the engine module imports this one
    from facta.store.engine import HookedAppends, Subscriber


def _filtered(
    records: Sequence[RecordedEvent],
    after: Position,
    categories: Sequence[str] | None,
    types: Sequence[str] | None,
) -> list[RecordedEvent]:
    wanted_categories = set(categories or ())
    wanted_types = set(types or ())
    return [
        r
        for r in records
        if r.position > after
        and (not wanted_categories or category_of(r.stream_id) in wanted_categories)
        and (not wanted_types or r.type in wanted_types)
    ]


class ArchivedEvents:
    """The event store (with its inline appends and subscriptions, where the engine has
    them) reading through to the archive in ``cold``."""

    def __init__(
        self,
        inner: EventStore,
        cold: ColdStore,
        *,
        inline: HookedAppends | None = None,
        subscriber: Subscriber | None = None,
    ) -> None:
        self.inner = inner
        self.cold = cold
        self._inline = inline
        self._subscriber = subscriber

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
    ) -> AppendResult:
        if events and self.cold.may_hold_event(events[0].event_id):
            repeated = await self._archived_repeat(stream_id, events)
            if repeated is not None:
                return repeated
        if hook is None:
            return await self.inner.append(stream_id, events, expected_version)
        assert self._inline is not None, "the engine declares no inline transactions"
        return await self._inline.append(stream_id, events, expected_version, hook=hook)

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        records = await self.inner.read_stream(
            stream_id,
            from_version=from_version,
            to_version=to_version,
            backwards=backwards,
            limit=limit,
        )
        start = max(from_version, 1)
        if records:
            lowest = records[-1].version if backwards else records[0].version
            if lowest <= start or (backwards and limit is not None and len(records) >= limit):
                return records  # all there (the common case), or a full page from the top
            hot_from = lowest
        elif to_version is not None and to_version >= start:
            hot_from = to_version + 1  # a bounded range below what the engine holds now
        else:
            return records
        if not self.cold.holds(stream_id):
            return records
        cold = await asyncio.to_thread(self.cold.read_stream, stream_id, start, hot_from - 1)
        joined = records + cold[::-1] if backwards else cold + records
        return joined if limit is None else joined[:limit]

    async def read_all(
        self,
        *,
        after: Position = START,
        limit: int = 1000,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        wait_for_held_back: bool = True,
    ) -> list[RecordedEvent]:
        records = await self.inner.read_all(
            after=after,
            limit=limit,
            categories=categories,
            types=types,
            wait_for_held_back=wait_for_held_back,
        )
        # The index after the engine: an event being archived is in one or the other.
        chunks = self.cold.chunks(after)
        if not chunks:
            return records
        cold = await asyncio.to_thread(self._cold_page, chunks, after, limit, categories, types)
        merged: list[RecordedEvent] = []
        last: Position | None = None
        for record in heapq.merge(cold, records, key=lambda r: r.position):
            if record.position == last:
                continue  # moved while we read: in the engine and in the archive
            merged.append(record)
            last = record.position
            if len(merged) == limit:
                break
        # Where either page was full, what lies past its end is not known: stop there.
        for page in (records, cold):
            if len(page) == limit and merged and merged[-1].position > page[-1].position:
                merged = [r for r in merged if r.position <= page[-1].position]
        return merged

    def _cold_page(
        self,
        chunks: Sequence[ChunkInfo],
        after: Position,
        limit: int,
        categories: Sequence[str] | None,
        types: Sequence[str] | None,
    ) -> list[RecordedEvent]:
        """The first ``limit`` archived events after ``after`` that pass the filters, from
        the chunks (by first position) that may hold them; chunks may overlap."""
        page: list[RecordedEvent] = []
        for chunk in chunks:
            if len(page) >= limit and chunk.first > page[limit - 1].position:
                break
            found = _filtered(self.cold.events_of(chunk.name), after, categories, types)
            page = list(heapq.merge(page, found, key=lambda r: r.position))
        return page[:limit]

    async def stream_version(self, stream_id: str) -> int:
        return await self.inner.stream_version(stream_id)

    async def head(self) -> Position:
        return await self.inner.head()

    async def find_event(self, event_id: str) -> RecordedEvent | None:
        # The engine first: an event being archived is in one or the other.
        found = await self.inner.find_event(event_id)
        if found is not None or not self.cold.may_hold_event(event_id):
            return found
        return await asyncio.to_thread(self.cold.find_event, event_id)

    async def _archived_repeat(
        self, stream_id: str, events: Sequence[NewEvent]
    ) -> AppendResult | None:
        """The result of the earlier append of ``events``, whose first is archived (None
        when it is not, after all: another id with the same hash); DuplicateEventId when
        they were stored in another stream or as part of other appends."""
        earlier = [await self.find_event(e.event_id) for e in events]
        first = earlier[0]
        if first is None:
            return None
        if any(e is None or e.stream_id != stream_id for e in earlier):
            raise DuplicateEventId(first.event_id, f"in stream {first.stream_id!r}")
        stored = tuple(e for e in earlier if e is not None)
        return AppendResult(stream_id, stored[-1].version, stored[-1].position, stored)

    async def wait_for_events(self, after: Position, max_wait: float) -> None:
        await self.inner.wait_for_events(after, max_wait)

    def subscribe(
        self,
        *,
        after: Position = START,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        return self._subscribe(after, categories, types, batch_size)

    async def _subscribe(
        self,
        after: Position,
        categories: Sequence[str] | None,
        types: Sequence[str] | None,
        batch_size: int,
    ) -> AsyncIterator[RecordedEvent]:
        # Through the archive's last event by reading (engine and archive merged), then the
        # engine's own way of following: the archiver moves only events every reader passed.
        archived_to = self.cold.last_position()
        while archived_to is not None and after < archived_to:
            page = await self.read_all(
                after=after, limit=batch_size, categories=categories, types=types
            )
            if not page:
                break
            for record in page:
                yield record
            after = page[-1].position
        if self._subscriber is None:
            live = follow(
                self, after=after, categories=categories, types=types, batch_size=batch_size
            )
        else:
            live = self._subscriber.subscribe(
                after=after, categories=categories, types=types, batch_size=batch_size
            )
        async for record in live:
            yield record

    async def close(self) -> None:
        self.cold.close()
        await self.inner.close()
