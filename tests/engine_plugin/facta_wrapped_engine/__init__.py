"""A third-party engine for facta, written as another package would write one: only facta's
public storage API, registered for ``wrapped://`` URLs by an entry point.

Its event store is a class of its own that keeps the events in facta's in-memory engine
and counts what it is asked (a stand-in for a database client); the read models and relay
checkpoints are the in-memory engine's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from facta.store import Engine, InlineTransactions, PersonalData, Snapshots, open_store
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
)


class CountingEventStore:
    """An EventStore over another engine's, counting the calls made of it."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
    ) -> AppendResult:
        self._count("append")
        return await self.inner.append(stream_id, events, expected_version, hook=hook)

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        self._count("read_stream")
        return await self.inner.read_stream(
            stream_id,
            from_version=from_version,
            to_version=to_version,
            backwards=backwards,
            limit=limit,
        )

    async def read_all(
        self,
        *,
        after: Position = START,
        limit: int = 1000,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        wait_for_held_back: bool = True,
    ) -> list[RecordedEvent]:
        self._count("read_all")
        return await self.inner.read_all(
            after=after,
            limit=limit,
            categories=categories,
            types=types,
            wait_for_held_back=wait_for_held_back,
        )

    async def stream_version(self, stream_id: str) -> int:
        return await self.inner.stream_version(stream_id)

    async def head(self) -> Position:
        return await self.inner.head()

    async def find_event(self, event_id: str) -> RecordedEvent | None:
        return await self.inner.find_event(event_id)

    async def wait_for_events(self, after: Position, max_wait: float) -> None:
        await self.inner.wait_for_events(after, max_wait)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.inner.save_snapshot(snapshot)

    async def load_snapshot(
        self,
        stream_id: str,
        *,
        max_version: int | None = None,
        max_recorded_at: float | None = None,
    ) -> Snapshot | None:
        return await self.inner.load_snapshot(
            stream_id, max_version=max_version, max_recorded_at=max_recorded_at
        )

    async def close(self) -> None:
        await self.inner.close()


class WrappedEngine(Engine):
    """The counting event store with the in-memory engine's read side."""

    name = "wrapped"

    def __init__(self, url: str, inner: Engine) -> None:
        events = CountingEventStore(inner)
        super().__init__(
            url,
            events=events,
            read_models=inner.read_models,
            relay_checkpoints=inner.relay_checkpoints,
            capabilities={
                Snapshots: events,
                InlineTransactions: events,
                # The keys of personal data are the inner engine's, as its events are.
                PersonalData: inner.require(PersonalData),
            },
        )


async def open_engine(url: str, *, create: bool = True, **options: Any) -> WrappedEngine:
    """A new engine for ``wrapped://...`` (``create`` and options change nothing)."""
    return WrappedEngine(url, await open_store("memory://"))
