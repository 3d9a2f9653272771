"""An engine's event store with personal data sealed on the way in and opened on the way out.

:class:`~facta.store.engine.Engine` puts these in front of the event store, the inline
appends, the subscriptions and the consistency boundaries of an engine that has the
PersonalData capability, so every path that appends or reads events (the Application, the
projection runner, the relay, the HTTP feed, the CLI) gets the same treatment on every
engine, and no engine encrypts anything itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from facta.personal.vault import Vault
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
    Transaction,
    TransactionHook,
    check_hook,
)
from facta.store.boundaries import (
    AppendCondition,
    BoundaryStore,
    Query,
    TaggedEvents,
    own_stream,
)

if TYPE_CHECKING:  # the engine module imports this one
    from facta.store.engine import HookedAppends, Subscriber


class _OpenedHook:
    """A transaction hook that gets the records it is given opened (from the cache: they
    were just sealed with the keys in it), keeping how the hook may be run."""

    def __init__(self, hook: TransactionHook, vault: Vault) -> None:
        self.hook = hook
        self.vault = vault
        self.takes_batches = hook.takes_batches
        self.runs_in_place = hook.runs_in_place

    def __call__(self, tx: Transaction, records: Sequence[RecordedEvent], /) -> Awaitable[None]:
        return self.hook(tx, self.vault.open_cached(records))


async def _opened_result(
    vault: Vault, new: Sequence[NewEvent], sealed: Sequence[NewEvent], result: AppendResult
) -> AppendResult:
    if sealed is new:  # nothing was sealed
        return result
    events = vault.plain_result(sealed, new, result.events)
    if events is None:  # an earlier append's records
        events = await vault.open(list(result.events))
    return AppendResult(result.stream_id, result.version, result.position, tuple(events))


async def _opened_stream(
    vault: Vault, records: AsyncIterator[RecordedEvent]
) -> AsyncIterator[RecordedEvent]:
    async for record in records:
        opened = await vault.open_one(record)
        assert opened is not None
        yield opened


class SealedEvents:
    """The event store (and its inline appends and subscriptions, where the engine has
    them) with personal fields sealed on append and opened on every read."""

    def __init__(
        self,
        inner: EventStore,
        vault: Vault,
        *,
        inline: HookedAppends | None = None,
        subscriber: Subscriber | None = None,
    ) -> None:
        self.inner = inner
        self.vault = vault
        self._inline = inline
        self._subscriber = subscriber
        # hook id -> (the hook, its opening wrapper): one wrapper per hook, since an engine
        # group commits only the appends that carry the same hook.
        self._hooks: dict[int, tuple[TransactionHook, _OpenedHook]] = {}

    def _opened_hook(self, hook: TransactionHook) -> _OpenedHook:
        found = self._hooks.get(id(hook))
        if found is None or found[0] is not hook:
            if len(self._hooks) > 64:
                self._hooks.clear()
            found = self._hooks[id(hook)] = (hook, _OpenedHook(check_hook(hook), self.vault))
        return found[1]

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
    ) -> AppendResult:
        # Most appends hold nothing personal: no step of sealing then, not even a coroutine.
        sealed = events
        for event in events:
            if event.personal:
                sealed = await self.vault.seal(stream_id, events)
                break
        if hook is None:
            result = await self.inner.append(stream_id, sealed, expected_version)
        else:
            inline = self._inline
            assert inline is not None, "the engine declares no inline transactions"
            result = await inline.append(
                stream_id, sealed, expected_version, hook=self._opened_hook(hook)
            )
        if sealed is events:
            return result
        return await _opened_result(self.vault, events, sealed, result)

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
        return await self.vault.open(records)

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
        return await self.vault.open(records)

    async def stream_version(self, stream_id: str) -> int:
        return await self.inner.stream_version(stream_id)

    async def head(self) -> Position:
        return await self.inner.head()

    async def find_event(self, event_id: str) -> RecordedEvent | None:
        return await self.vault.open_one(await self.inner.find_event(event_id))

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
        if self._subscriber is None:
            return follow(
                self, after=after, categories=categories, types=types, batch_size=batch_size
            )
        records = self._subscriber.subscribe(
            after=after, categories=categories, types=types, batch_size=batch_size
        )
        return _opened_stream(self.vault, records)

    async def close(self) -> None:
        await self.inner.close()


class SealedBoundaries:
    """Consistency boundaries with personal fields sealed on append and opened on read."""

    def __init__(self, inner: BoundaryStore, vault: Vault) -> None:
        self.inner = inner
        self.vault = vault

    async def read(
        self, query: Query, *, after: Position | None = None, limit: int | None = None
    ) -> TaggedEvents:
        read = await self.inner.read(query, after=after, limit=limit)
        events = await self.vault.open(read.events)
        return read if events is read.events else TaggedEvents(events, read.after)

    def append(
        self,
        events: Sequence[NewEvent],
        condition: AppendCondition | None = None,
        *,
        stream_id: str | None = None,
    ) -> Coroutine[Any, Any, AppendResult]:
        # Most appends hold nothing personal: then the inner append's own coroutine, with no
        # step of sealing, not even a coroutine of this wrapper's (a conditional append on
        # memory takes a few microseconds, of which a coroutine layer is a tenth).
        for event in events:
            if event.personal:
                return self._sealed_append(events, condition, stream_id)
        return self.inner.append(events, condition, stream_id=stream_id)

    async def _sealed_append(
        self, events: Sequence[NewEvent], condition: AppendCondition | None, stream_id: str | None
    ) -> AppendResult:
        # The stream is named here, so that a field whose subject is its stream has one.
        stream = stream_id or own_stream(events)
        sealed = await self.vault.seal(stream, events)
        result = await self.inner.append(sealed, condition, stream_id=stream)
        return await _opened_result(self.vault, events, sealed, result)

    def subscribe(
        self, query: Query, *, after: Position | None = None, batch_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        records = self.inner.subscribe(query, after=after, batch_size=batch_size)
        return _opened_stream(self.vault, records)
