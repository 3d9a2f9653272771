"""Dynamic consistency boundaries (dcb.events): tagged events, queries over types and tags, and
appends conditioned on no event matching a query since a position.

A decision reads the events a :class:`Query` selects (:meth:`BoundaryStore.read`), decides,
and appends under an :class:`AppendCondition` built from the same query and the position the
read returned: the append fails with :class:`~facta.errors.AppendConditionFailed`, writing
nothing, if an event matching the query was appended meanwhile. Engines offer it as the
:data:`Boundaries` capability; memory, SQLite and PostgreSQL all do.

Tagged events live in the one log beside the aggregates' streams: each conditional append
writes a stream of its own (``dcb-...``, or one the caller names), so projections, the relay
and subscriptions see them as any other events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from facta._retry import backoff
from facta.errors import StoreUnavailable
from facta.store._follow import MAX_WAIT
from facta.store.base import (
    ANY,
    AppendResult,
    EventStore,
    ExpectedVersion,
    NewEvent,
    Position,
    RecordedEvent,
)

logger = logging.getLogger("facta.store")

MAX_TAG_LENGTH = 200

DCB_CATEGORY = "dcb"
"""The category of the streams that conditional appends write when given none."""

_PLAIN_ID = re.compile(r"[0-9a-f-]{1,64}").fullmatch
_STREAM_NAMESPACE = uuid.UUID("1c3f0b7e-5a3d-4f0e-8f6c-2b9d7a4e6c11")


def check_tags(tags: Iterable[str], what: str = "tag") -> tuple[str, ...]:
    """``tags`` as a sorted tuple without repeats; ValueError for a tag that is empty, longer
    than 200 characters, or holds a control character (they separate tags in storage)."""
    if type(tags) is tuple:  # the commonest case: already canonical, checked without a set
        previous = ""  # below every tag but the empty one, which is refused
        for tag in tags:
            if not (
                type(tag) is str
                and previous < tag
                and len(tag) <= MAX_TAG_LENGTH
                and tag.isprintable()
            ):
                break
            previous = tag
        else:
            return tags
    checked = set()
    for tag in tags:
        if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_LENGTH:
            raise ValueError(f"a {what} must be a string of 1-{MAX_TAG_LENGTH} characters: {tag!r}")
        if not tag.isprintable():
            raise ValueError(f"a {what} must not hold control characters: {tag!r}")
        checked.add(tag)
    return tuple(sorted(checked))


class QueryItem(msgspec.Struct, frozen=True, gc=False):
    """Matches an event whose type is one of ``types`` (any type when empty) and that carries
    every one of ``tags`` (tagged or not when empty)."""

    types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.types, str) or isinstance(self.tags, str):
            raise TypeError("QueryItem takes tuples of types and tags, not a string")
        msgspec.structs.force_setattr(self, "types", check_tags(self.types, "type"))
        msgspec.structs.force_setattr(self, "tags", check_tags(self.tags))

    def matches(self, type: str, tags: Sequence[str]) -> bool:
        """Whether an event of ``type`` carrying ``tags`` matches."""
        if self.types and type not in self.types:
            return False
        return all(tag in tags for tag in self.tags)


class Query(msgspec.Struct, frozen=True, gc=False):
    """Events that match any of ``items`` (at least one)."""

    items: tuple[QueryItem, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("a query needs at least one item (Query.all() matches every event)")
        msgspec.structs.force_setattr(self, "items", tuple(self.items))

    @classmethod
    def all(cls) -> Query:
        """The query every event matches."""
        return cls((QueryItem(),))

    @classmethod
    def of(cls, *, types: Iterable[str] = (), tags: Iterable[str] = ()) -> Query:
        """A query of one item."""
        return cls((QueryItem(tuple(types), tuple(tags)),))

    def matches(self, type: str, tags: Sequence[str]) -> bool:
        """Whether an event of ``type`` carrying ``tags`` matches any item."""
        return any(item.matches(type, tags) for item in self.items)

    def __or__(self, other: Query) -> Query:
        return Query(self.items + other.items)


class AppendCondition(msgspec.Struct, frozen=True, gc=False):
    """The append fails if an event matching ``fail_if_events_match`` was appended after
    ``after`` (with ``after`` None: if one exists at all, which makes the append unique)."""

    fail_if_events_match: Query
    after: Position | None = None


class TaggedEvents(msgspec.Struct, frozen=True, gc=False):
    """What a query read: the matching events in log order, and ``after``, the position an
    append condition over the same query names (None when nothing matched)."""

    events: list[RecordedEvent]
    after: Position | None

    def condition(self, query: Query) -> AppendCondition:
        """The condition that no event matching ``query`` was appended since this read."""
        return AppendCondition(query, self.after)


@runtime_checkable
class BoundaryStore(Protocol):
    """Reads by query and appends under a condition (engine contract 7)."""

    async def read(
        self, query: Query, *, after: Position | None = None, limit: int | None = None
    ) -> TaggedEvents:
        """The events matching ``query`` after ``after``, in log order, up to ``limit``.

        Gap-safe as the log is: an event committing later never lands before the returned
        ``after``, so a condition built from it also covers events held back now.
        """
        ...

    async def append(
        self,
        events: Sequence[NewEvent],
        condition: AppendCondition | None = None,
        *,
        stream_id: str | None = None,
    ) -> AppendResult:
        """Append ``events`` (with their tags) atomically if ``condition`` holds.

        Raises AppendConditionFailed, writing nothing, if an event matching the condition's
        query was appended after its ``after``. The events go to ``stream_id`` (at whatever
        version it is), or to a stream of their own named after the first event's id, so
        appending the same event ids again returns the first result and writes nothing.
        """
        ...

    def subscribe(
        self, query: Query, *, after: Position | None = None, batch_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up with the events matching ``query``, then follow new ones, forever."""
        ...


@runtime_checkable
class ConditionalLog(EventStore, Protocol):
    """An engine's event store that also appends under a condition (what the shared half
    of every engine's boundary store, :class:`TaggedLog`, builds on)."""

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        condition: AppendCondition | None = None,
    ) -> AppendResult:
        """Append as :meth:`EventStore.append` does; with ``condition``, only if it holds
        (AppendConditionFailed, nothing written, otherwise)."""
        ...


class TaggedLog:
    """What every engine's :class:`BoundaryStore` shares: appends through its event store's
    conditional append, each in a stream of its own unless named, and query subscriptions
    over its ``read``. An engine subclasses it and writes ``read``."""

    def __init__(self, log: ConditionalLog) -> None:
        self._log = log

    async def read(
        self, query: Query, *, after: Position | None = None, limit: int | None = None
    ) -> TaggedEvents:
        """See :meth:`BoundaryStore.read`."""
        raise NotImplementedError

    def append(
        self,
        events: Sequence[NewEvent],
        condition: AppendCondition | None = None,
        *,
        stream_id: str | None = None,
    ) -> Coroutine[Any, Any, AppendResult]:
        """See :meth:`BoundaryStore.append` (the log's append itself, no coroutine layer of
        its own: a bad tag or id raises here, before anything is awaited)."""
        events = tag_events(events)
        return self._log.append(stream_id or own_stream(events), events, ANY, condition=condition)

    def subscribe(
        self, query: Query, *, after: Position | None = None, batch_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        """See :meth:`BoundaryStore.subscribe`."""
        return follow_query(
            self, self._log, query, after=after, batch_size=batch_size, head=self._head
        )

    async def _head(self) -> Position:
        """The log's head for subscriptions (an engine whose head waits overrides it)."""
        return await self._log.head()


def own_stream(events: Sequence[NewEvent]) -> str:
    """The stream a conditional append writes when given none: derived from the first event's
    id, so that a retry of the same events lands on the same stream (and is a no-op)."""
    if not events:
        raise ValueError("nothing to append")
    event_id = events[0].event_id
    if _PLAIN_ID(event_id):  # a UUID, as facta makes them: usable as it is
        return f"{DCB_CATEGORY}-{event_id}"
    return f"{DCB_CATEGORY}-{uuid.uuid5(_STREAM_NAMESPACE, event_id)}"


def tag_events(events: Sequence[NewEvent]) -> Sequence[NewEvent]:
    """``events`` with their tags checked and put in canonical order (sorted, no repeats):
    ``events`` itself when they are already so (the commonest case)."""
    checked: list[NewEvent] | None = None
    for i, event in enumerate(events):
        tags = check_tags(event.tags)
        if tags is not event.tags:
            if checked is None:
                checked = list(events)
            checked[i] = msgspec.structs.replace(event, tags=tags)
    return events if checked is None else checked


async def follow_query(
    boundaries: BoundaryStore,
    log: EventStore,
    query: Query,
    *,
    after: Position | None,
    batch_size: int,
    head: Callable[[], Awaitable[Position]] | None = None,
) -> AsyncIterator[RecordedEvent]:
    """Yield every event matching ``query`` after ``after``, then wait for more, forever: the
    subscription every engine's boundary store gives, over its ``read`` and the log's head
    and wake-ups (``head`` reads the head without waiting; default ``log.head``). A store
    that cannot be reached only pauses it (with back-off)."""
    read_head = head or log.head
    position = after
    wait = 0.05
    failures = 0
    while True:
        try:
            # The head first: a short page then proves nothing matching lies between the
            # page's end and that head, so the next read may start there.
            last = await read_head()
            page = await boundaries.read(query, after=position, limit=batch_size)
        except StoreUnavailable as exc:
            failures += 1
            retry = backoff(failures)
            logger.warning(
                "query subscription resumes after %s in %.1f s: %s", position, retry, exc
            )
            await asyncio.sleep(retry)
            continue
        failures = 0
        for event in page.events:
            yield event
            position = event.position
        if len(page.events) == batch_size:
            continue
        if position is None or last > position:
            position = last
        if page.events:
            wait = 0.05
            continue
        with contextlib.suppress(StoreUnavailable):
            await log.wait_for_events(position, wait)
        wait = min(wait * 2, MAX_WAIT)
