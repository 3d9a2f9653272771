"""The in-memory event store: for tests, examples and benchmarks of everything above the store.

Every operation runs without awaiting between its check and its write, so it is atomic on the
event loop; appends with a transaction hook hold a lock across the hook.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from facta.errors import AppendConditionFailed, DuplicateEventId
from facta.store._follow import follow
from facta.store.base import (
    ANY,
    START,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    Position,
    RecordedEvent,
    Snapshot,
    TransactionHook,
    category_of,
    check_expected_version,
    check_hook,
    validate_stream_id,
)
from facta.store.boundaries import AppendCondition, Query


class MemoryTransaction:
    """The handle a transaction hook receives: queued actions run only if the append commits."""

    def __init__(self, store: MemoryEventStore) -> None:
        self.store = store
        self.on_commit: list[Callable[[], None]] = []

    @property
    def connection(self) -> None:
        """No database, no connection."""
        return None


class MemoryEventStore:
    """An EventStore held in process memory; gone when the process ends."""

    def __init__(self) -> None:
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._by_id: dict[str, RecordedEvent] = {}
        self.by_tag: dict[str, list[RecordedEvent]] = {}
        self._snapshots: dict[str, list[Snapshot]] = {}
        self._hook_lock = asyncio.Lock()
        self._appended = asyncio.Event()
        self.closed = False

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
        condition: AppendCondition | None = None,
    ) -> AppendResult:
        """Append (see :class:`~facta.store.base.EventStore`); with ``condition`` (and no
        hook), only if it holds, checked and written with no await in between."""
        validate_stream_id(stream_id)
        if hook is not None:
            check_hook(hook)
        if not events:
            actual = len(self._streams.get(stream_id, ()))
            check_expected_version(stream_id, expected_version, actual)
            return AppendResult(stream_id, actual, self._head(), ())
        if hook is None:
            return self._commit(self._prepare(stream_id, events, expected_version, condition))
        async with self._hook_lock:
            prepared = self._prepare(stream_id, events, expected_version)
            if isinstance(prepared, AppendResult):
                return prepared
            tx = MemoryTransaction(self)
            await hook(tx, prepared)
            # The hook awaited: check again that nobody appended to the stream meanwhile.
            prepared = self._prepare(stream_id, events, expected_version)
            if isinstance(prepared, AppendResult):
                return prepared
            result = self._commit(prepared)
            for action in tx.on_commit:
                action()
            return result

    def _prepare(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: ExpectedVersion,
        condition: AppendCondition | None = None,
    ) -> list[RecordedEvent] | AppendResult:
        stream = self._streams.get(stream_id, [])
        if (earlier := self._by_id.get(events[0].event_id)) is not None:
            return self._repeat(stream_id, events, earlier)
        check_expected_version(stream_id, expected, len(stream))
        if condition is not None:
            self._check(condition)
        now = time.time()
        sequence = len(self._log)
        version = len(stream)
        recorded = []
        for offset, event in enumerate(events, 1):
            if event.event_id in self._by_id:
                raise DuplicateEventId(event.event_id, "stored in an earlier append")
            recorded.append(
                RecordedEvent(
                    event.event_id,
                    stream_id,
                    version + offset,
                    Position(0, sequence + offset),
                    event.type,
                    event.schema_version,
                    event.data,
                    event.metadata,
                    now,
                    event.tags,
                )
            )
        if len(events) > 1 and len({e.event_id for e in events}) != len(events):
            raise DuplicateEventId(events[0].event_id, "the same id twice in one append")
        return recorded

    def _check(self, condition: AppendCondition) -> None:
        """AppendConditionFailed if an event matching the condition's query is in the log
        after its position."""
        start = 0 if condition.after is None else condition.after.sequence
        first: RecordedEvent | None = None
        for item in condition.fail_if_events_match.items:
            # The earliest match of each item (from the tag index where it names a tag):
            # no generator, dictionary or sort on this path, which every append takes.
            if item.tags:
                tagged = self.by_tag.get(item.tags[0])
                if not tagged or tagged[-1].position.sequence <= start:
                    continue  # the commonest case: nothing with the tag since the read
                index = bisect.bisect_right(tagged, start, key=_sequence)
                candidates = itertools.islice(tagged, index, None)
            else:
                candidates = itertools.islice(self._log, start, None)
            for event in candidates:
                if first is not None and event.position >= first.position:
                    break
                if item.matches(event.type, event.tags):
                    first = event
                    break
        if first is not None:
            raise AppendConditionFailed(first.event_id, first.position)

    def matching(self, query: Query, start: int) -> Iterator[RecordedEvent]:
        """The events after sequence ``start`` that match ``query``, in log order: from the
        tag index when every item names a tag, else from the log."""
        if all(item.tags for item in query.items):
            found: dict[int, RecordedEvent] = {}
            for item in query.items:
                tagged = self.by_tag.get(item.tags[0], [])
                # In log order: start from the first event after ``start``.
                first = bisect.bisect_right(tagged, start, key=_sequence)
                for event in itertools.islice(tagged, first, None):
                    if item.matches(event.type, event.tags):
                        found[event.position.sequence] = event
            yield from (found[sequence] for sequence in sorted(found))
            return
        for event in self._log[start:]:
            if query.matches(event.type, event.tags):
                yield event

    def _repeat(
        self, stream_id: str, events: Sequence[NewEvent], earlier: RecordedEvent
    ) -> AppendResult:
        """The result of the first append of these event ids, or DuplicateEventId."""
        originals = [self._by_id.get(e.event_id) for e in events]
        if any(o is None or o.stream_id != stream_id for o in originals):
            raise DuplicateEventId(earlier.event_id, f"in stream {earlier.stream_id!r}")
        stored = tuple(o for o in originals if o is not None)
        return AppendResult(stream_id, stored[-1].version, stored[-1].position, stored)

    def _commit(self, prepared: list[RecordedEvent] | AppendResult) -> AppendResult:
        if isinstance(prepared, AppendResult):
            return prepared
        stream_id = prepared[0].stream_id
        self._streams.setdefault(stream_id, []).extend(prepared)
        self._log.extend(prepared)
        by_tag = self.by_tag
        for event in prepared:
            self._by_id[event.event_id] = event
            for tag in event.tags:
                by_tag.setdefault(tag, []).append(event)
        self._appended.set()
        self._appended = asyncio.Event()
        last = prepared[-1]
        return AppendResult(stream_id, last.version, last.position, tuple(prepared))

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        stream = self._streams.get(stream_id, [])
        last = len(stream) if to_version is None else min(to_version, len(stream))
        selected = stream[max(from_version, 1) - 1 : max(last, 0)]
        if backwards:
            selected = selected[::-1]
        return selected if limit is None else selected[:limit]

    async def read_all(
        self,
        *,
        after: Position = START,
        limit: int = 1000,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        wait_for_held_back: bool = True,  # one writer: nothing is ever held back here
    ) -> list[RecordedEvent]:
        start = after.sequence  # sequence n is at index n - 1
        if not categories and not types:
            return self._log[start : start + limit]
        wanted_categories = set(categories or ())
        wanted_types = set(types or ())
        page = []
        for event in self._log[start:]:
            if wanted_categories and category_of(event.stream_id) not in wanted_categories:
                continue
            if wanted_types and event.type not in wanted_types:
                continue
            page.append(event)
            if len(page) == limit:
                break
        return page

    def subscribe(
        self,
        *,
        after: Position = START,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        return follow(self, after=after, categories=categories, types=types, batch_size=batch_size)

    async def stream_version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    def stream_ids(self) -> list[str]:
        """The ids of every stream with events (for the console's browsing)."""
        return list(self._streams)

    async def head(self) -> Position:
        return self._head()

    def _head(self) -> Position:
        return self._log[-1].position if self._log else START

    async def find_event(self, event_id: str) -> RecordedEvent | None:
        return self._by_id.get(event_id)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        snapshots = self._snapshots.setdefault(snapshot.stream_id, [])
        versions = [s.version for s in snapshots]
        index = bisect.bisect_left(versions, snapshot.version)
        if index < len(snapshots) and snapshots[index].version == snapshot.version:
            snapshots[index] = snapshot
        else:
            snapshots.insert(index, snapshot)

    async def load_snapshot(
        self,
        stream_id: str,
        *,
        max_version: int | None = None,
        max_recorded_at: float | None = None,
    ) -> Snapshot | None:
        for snapshot in reversed(self._snapshots.get(stream_id, ())):
            if max_version is not None and snapshot.version > max_version:
                continue
            if max_recorded_at is not None and snapshot.recorded_at > max_recorded_at:
                continue
            return snapshot
        return None

    async def delete_snapshots(self, stream_ids: Sequence[str]) -> int:
        """Delete every snapshot of these streams (forgetting personal data); how many."""
        return sum(len(self._snapshots.pop(stream_id, ())) for stream_id in set(stream_ids))

    async def wait_for_events(self, after: Position, max_wait: float) -> None:
        if self._head() > after:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait):
                await self._appended.wait()

    async def close(self) -> None:
        self.closed = True


def _sequence(event: RecordedEvent) -> int:
    return event.position.sequence
