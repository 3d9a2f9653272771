"""The in-memory event store: for tests, examples and benchmarks of everything above the store.

Every operation runs without awaiting between its check and its write, so it is atomic on the
event loop; appends with a transaction hook hold a lock across the hook.

The log is a list in sequence order and each stream a list in version order. Until events are
erased (:meth:`MemoryEventStore.erase`, the Erasure capability) the event at sequence n is at
index n - 1 of the log and version v at index v - 1 of its stream, and reads slice by those
numbers. Erasure leaves holes: from then on the log is searched by sequence (bisect), and a
stream whose first events were erased counts them in ``_erased`` (its version is the events
left plus those erased).
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
        self._last_sequence = 0  # the log's last sequence number (not its length: see erase)
        self._erased: dict[str, int] = {}  # how many leading events of a stream were erased
        self._holes = False  # whether events were erased: the log no longer indexes by sequence
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
            actual = self._version(stream_id)
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
        version = len(stream) + self._erased.get(stream_id, 0)
        check_expected_version(stream_id, expected, version)
        if condition is not None:
            self._check(condition)
        now = time.time()
        sequence = self._last_sequence
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
                candidates = itertools.islice(self._log, self._index_after(start), None)
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
        for event in self._log[self._index_after(start) :]:
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
        stream = self._streams.get(stream_id)
        if stream is None:  # a new stream (each conditional append's, by default)
            self._streams[stream_id] = prepared.copy()
        else:
            stream.extend(prepared)
        self._log.extend(prepared)
        self._last_sequence = prepared[-1].position.sequence
        by_tag, by_id = self.by_tag, self._by_id
        for event in prepared:
            by_id[event.event_id] = event
            for tag in event.tags:
                tagged = by_tag.get(tag)
                if tagged is None:
                    by_tag[tag] = [event]
                else:
                    tagged.append(event)
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
        erased = self._erased.get(stream_id, 0)  # version v is at index v - 1 - erased
        version = len(stream) + erased
        last = version if to_version is None else min(to_version, version)
        selected = stream[max(from_version - 1 - erased, 0) : max(last - erased, 0)]
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
        start = self._index_after(after.sequence)
        if not categories and not types:
            return self._log[start : start + limit]
        wanted_categories = set(categories or ())
        wanted_types = set(types or ())
        page = []
        for event in itertools.islice(self._log, start, None):
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
        return self._version(stream_id)

    def _version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ())) + self._erased.get(stream_id, 0)

    def _index_after(self, sequence: int) -> int:
        """The index in the log of the first event after ``sequence``."""
        if self._holes:
            return bisect.bisect_right(self._log, sequence, key=_sequence)
        return sequence  # sequence n is at index n - 1

    def event_count(self) -> int:
        """How many events are stored (fewer than the head's sequence once some are erased)."""
        return len(self._log)

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

    # -- erasure (the engine's Eraser calls these) --------------------------------------

    def check_erasable(self, stream_id: str, before_version: int) -> None:
        """ValueError if erasing ``stream_id`` below ``before_version`` would remove its
        last event."""
        version = self._version(stream_id)
        if before_version > 1 and before_version > version:
            raise ValueError(
                f"cannot erase the events of {stream_id!r} before version {before_version}:"
                f" its version is {version}, and its last event is never erased"
            )

    def erase(self, stream_id: str, before_version: int) -> int:
        """Remove the events of ``stream_id`` below ``before_version`` from the stream, the
        log, the id index and the tag index; how many. ValueError above the stream's version
        (its last event stays, so the log's last event always does too, and sequence numbers
        and versions go on from where they were). An erased id is free again: appending an
        event with it stores a new event."""
        if before_version <= 1:
            return 0
        self.check_erasable(stream_id, before_version)
        erased = self._erased.get(stream_id, 0)
        count = before_version - 1 - erased
        if count <= 0:
            return 0
        stream = self._streams[stream_id]
        gone = stream[:count]
        del stream[:count]
        self._erased[stream_id] = erased + count
        self._holes = True
        for event in gone:
            del self._by_id[event.event_id]
            for tag in event.tags:
                tagged = self.by_tag[tag]
                del tagged[bisect.bisect_left(tagged, event.position.sequence, key=_sequence)]
                if not tagged:
                    del self.by_tag[tag]
        # A new list rather than one changed in place: an iteration of the old one that is
        # under way (a generator of ``matching``) is not disturbed.
        first = bisect.bisect_left(self._log, gone[0].position.sequence, key=_sequence)
        removed = {event.position.sequence for event in gone}
        kept = itertools.islice(self._log, first, None)
        self._log = self._log[:first] + [e for e in kept if e.position.sequence not in removed]
        return count

    def trim_snapshots(self, stream_id: str, before_version: int | None) -> int:
        """Delete the snapshots of ``stream_id`` below ``before_version`` (every one with
        None); how many."""
        snapshots = self._snapshots.get(stream_id)
        if not snapshots:
            return 0
        if before_version is None:
            del self._snapshots[stream_id]
            return len(snapshots)
        below = bisect.bisect_left(snapshots, before_version, key=lambda s: s.version)
        del snapshots[:below]
        if not snapshots:
            del self._snapshots[stream_id]
        return below

    def stored(self) -> tuple[int, int]:
        """(events in the log, bytes of their data and metadata): what the log holds."""
        return len(self._log), sum(len(e.data) + len(e.metadata) for e in self._log)

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
