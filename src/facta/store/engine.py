"""The engine: one database's implementation of every storage contract, as one object.

An engine is opened from a URL (:func:`facta.store.open_store`) and hands out what the layers
above need, all on the same database and sharing its connections:

- ``events``: the :class:`~facta.store.base.EventStore` (appends, reads, the global log);
- ``read_models``: the :class:`~facta.store.read_models.ReadModels` store (projection
  documents, their checkpoints and leases, dead letters);
- ``relay_checkpoints``: the relay's :class:`~facta.store.checkpoints.CheckpointStore`;
- optional capabilities, each a typed protocol that a caller asks for by its typed key with
  :meth:`Engine.capability`: ``engine.capability(Snapshots)`` is the engine's
  :class:`SnapshotStore`, or None. The keys: :data:`Snapshots`, :data:`InlineTransactions`,
  :data:`Subscriptions`, :data:`HeldBack`, :data:`Boundaries`, :data:`Browsing`,
  :data:`PersonalData`, :data:`Erasure`.

An engine with :data:`PersonalData` (a table of data subjects' keys) gets personal fields
sealed on append and opened on every read: the engine puts :mod:`facta.personal`'s wrappers
in front of its event store and the capabilities that append or read events, and keeps the
:class:`~facta.personal.vault.Vault` in ``vault`` (None without the capability).

The engine is also an event store itself: its event-store methods are its ``events``
component's, so code written against ``open_store(url)`` keeps calling ``store.append(...)``.
The framework's own hot paths use the component directly.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

from facta.archive.cold import ColdStore
from facta.archive.reading import ArchivedEvents
from facta.personal.sealed import SealedBoundaries, SealedEvents
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
    Snapshot,
    TransactionHook,
)
from facta.store.boundaries import BoundaryStore
from facta.store.browse import Browser
from facta.store.checkpoints import CheckpointStore
from facta.store.erasure import Eraser
from facta.store.keys import KeyStore
from facta.store.read_models import ReadModels

T = TypeVar("T")


class Capability(Generic[T]):
    """The typed key of an optional capability: what :meth:`Engine.capability` takes, and
    the protocol its implementation follows (checked when an engine declares it)."""

    def __init__(self, name: str, protocol: type[Any]) -> None:
        self.name = name
        self.protocol = protocol

    def __repr__(self) -> str:
        return f"<capability {self.name}>"


@runtime_checkable
class SnapshotStore(Protocol):
    """Stored states of streams, so that loading replays only the events after one."""

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot (replacing one at the same stream and version)."""
        ...

    async def load_snapshot(
        self,
        stream_id: str,
        *,
        max_version: int | None = None,
        max_recorded_at: float | None = None,
    ) -> Snapshot | None:
        """The latest snapshot at or below ``max_version`` whose event was recorded at or
        before ``max_recorded_at``."""
        ...


@runtime_checkable
class HookedAppends(Protocol):
    """Appends that run a hook inside their own transaction (inline projections): if the
    hook raises, the append rolls back and the error reaches the caller."""

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
    ) -> AppendResult:
        """Append as :meth:`EventStore.append` does, running ``hook`` in the transaction."""
        ...


@runtime_checkable
class Subscriber(Protocol):
    """A way of following the log better than reading it whenever woken (the default)."""

    def subscribe(
        self,
        *,
        after: Position = START,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from ``after``, then follow new events live, forever."""
        ...


@runtime_checkable
class HeldBackCounter(Protocol):
    """Engines whose readers may not see committed events yet (PostgreSQL's visibility
    rule): how many are held back now."""

    async def held_back(self) -> int:
        """How many committed events readers cannot see yet."""
        ...


Snapshots = Capability[SnapshotStore]("snapshots", SnapshotStore)
"""Stored states of streams (the Application takes and uses them where offered)."""

InlineTransactions = Capability[HookedAppends]("inline transactions", HookedAppends)
"""Appends that run a hook in their transaction (inline projections)."""

Subscriptions = Capability[Subscriber]("subscriptions", Subscriber)
"""A way of following the log better than the default (reading it whenever woken)."""

HeldBack = Capability[HeldBackCounter]("held back", HeldBackCounter)
"""A count of committed events readers cannot see yet (PostgreSQL's visibility rule)."""

Boundaries = Capability[BoundaryStore]("consistency boundaries", BoundaryStore)
"""Dynamic consistency boundaries: reads by a query of types and tags, and appends under a
condition over one (:mod:`facta.store.boundaries`)."""

PersonalData = Capability[KeyStore]("personal data", KeyStore)
"""Data subjects' keys in a table of their own, and purging snapshots when one is forgotten:
personal fields are then encrypted on append and decrypted on read (:mod:`facta.personal`)."""


Browsing = Capability[Browser]("stream browsing", Browser)
"""Streams by id prefix, the log's totals, events by correlation, every relay's row: what
the console reads (:mod:`facta.store.browse`)."""

Erasure = Capability[Eraser]("erasure", Eraser)
"""Removing a stream's older events and snapshots for good, and the log's size on disk:
what hard deletes, truncation and archiving build on (:mod:`facta.store.erasure`)."""


class CapabilityMissing(TypeError):
    """The engine does not offer a capability the caller needs."""

    def __init__(self, engine: Engine, capability: Capability[Any]) -> None:
        self.capability = capability
        super().__init__(f"the {engine.name} engine has no {capability.name} capability")


_VAULTS: weakref.WeakKeyDictionary[KeyStore, Vault] = weakref.WeakKeyDictionary()


def refuse_personal(engine: Engine, events: Sequence[NewEvent]) -> None:
    """CapabilityMissing if one of ``events`` has personal fields and ``engine`` has no
    :data:`PersonalData` to encrypt them: never stored in clear."""
    if engine.vault is None and any(event.personal for event in events):
        raise CapabilityMissing(engine, PersonalData)


class Engine:
    """One database's storage: its event store, read models and relay checkpoints, and the
    optional capabilities it declares. Open one with :func:`facta.store.open_store`; close
    it when done (it owns the connections of everything it handed out).

    An engine package builds one from its components: ``capabilities`` maps each capability
    key it offers to the object that implements it (often the event store itself).
    """

    name = "engine"
    """What the engine is called in messages (its URL scheme)."""

    waits_on_io = True
    """Whether its calls may wait on I/O (a database, files). False for the memory engine:
    its calls most often end without waiting, and a synchronous caller (:mod:`facta.sync`)
    runs them itself, outside a task (``asyncio.current_task()`` is None then, so code they
    call may not enter ``asyncio.timeout()`` before its first wait)."""

    def __init__(
        self,
        url: str,
        *,
        events: EventStore,
        read_models: ReadModels,
        relay_checkpoints: CheckpointStore,
        capabilities: Mapping[Capability[Any], object] = {},
    ) -> None:
        for key, implementation in capabilities.items():
            if not isinstance(implementation, key.protocol):
                raise TypeError(f"{implementation!r} does not implement {key.name}")
        self.url = url
        self.events = events
        self.read_models = read_models
        self.relay_checkpoints = relay_checkpoints
        self._capabilities = dict(capabilities)
        self._snapshots = self.capability(Snapshots)
        # The engine's own ways in, before any wrapper: what use_archive wraps again.
        self._own = (events, self.capability(InlineTransactions), self.capability(Subscriptions))
        self.archive: ColdStore | None = None
        """The cold storage read through, after :meth:`use_archive` (else None)."""
        self.vault: Vault | None = None
        """Personal data's keys and ciphers, where the engine has :data:`PersonalData`."""
        keys = self.capability(PersonalData)
        if keys is not None:
            self._seal(keys)

    def _seal(self, keys: KeyStore) -> None:
        """Put the sealing wrappers in front of everything that appends or reads events."""
        # One vault per key store in a process: an engine that keeps its events in another
        # engine shares that one's keys, and forgetting must drop them from both caches.
        vault = _VAULTS.get(keys)
        if vault is None:
            vault = _VAULTS[keys] = Vault(keys)
        self.vault = vault
        found = self._capabilities
        if Boundaries in found:
            found[Boundaries] = SealedBoundaries(cast(BoundaryStore, found[Boundaries]), vault)
        self._wrap(
            lambda events, inline, subscriber: SealedEvents(
                events, vault, inline=inline, subscriber=subscriber
            )
        )

    def _wrap(self, wrapper: Callable[[Any, Any, Any], Any]) -> None:
        """Put ``wrapper(events, inline, subscriber)`` in front of the event store, and of
        the inline appends and subscriptions where the engine has them."""
        found = self._capabilities
        wrapped = wrapper(
            self.events, self.capability(InlineTransactions), self.capability(Subscriptions)
        )
        self.events = wrapped
        for key in (InlineTransactions, Subscriptions):
            if key in found:
                found[key] = wrapped

    def use_archive(self, archive: ColdStore) -> None:
        """Read ``archive``'s events through, as if they were still in the engine (see
        :mod:`facta.archive.reading`): under the personal-data wrappers, so archived
        personal fields are opened or redacted like the others."""
        events, inline, subscriber = self._own
        found = self._capabilities
        archived = ArchivedEvents(events, archive, inline=inline, subscriber=subscriber)
        self.events = archived
        for key in (InlineTransactions, Subscriptions):
            if key in found:
                found[key] = archived
        self.archive = archive
        if self.vault is not None:
            vault = self.vault
            self._wrap(
                lambda events, inline, subscriber: SealedEvents(
                    events, vault, inline=inline, subscriber=subscriber
                )
            )

    @property
    def stored_events(self) -> EventStore:
        """The engine's own event store, without the wrappers: what is stored (personal
        fields sealed, archived events absent). For tools that move stored events as they
        are (the archiver); everything else reads ``events``."""
        return self._own[0]

    def capability(self, key: Capability[T]) -> T | None:
        """The object implementing the capability ``key`` names, or None when the engine
        does not offer it."""
        return cast("T | None", self._capabilities.get(key))

    def require(self, key: Capability[T]) -> T:
        """The object implementing the capability ``key``; CapabilityMissing if none."""
        found = self.capability(key)
        if found is None:
            raise CapabilityMissing(self, key)
        return found

    async def migrate(self) -> list[int]:
        """Create or bring up to date the engine's schema; returns the versions applied."""
        return []

    async def close(self) -> None:
        """Release every connection and thread of the engine and its components."""
        await self.relay_checkpoints.close()
        await self.read_models.close()
        await self.events.close()

    # -- the event store, for callers that use the engine as one -------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
    ) -> AppendResult:
        """:meth:`EventStore.append`; with ``hook``, the :data:`InlineTransactions` one."""
        if hook is None:
            return await self.events.append(stream_id, events, expected_version)
        inline = self.require(InlineTransactions)
        return await inline.append(stream_id, events, expected_version, hook=hook)

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """:meth:`EventStore.read_stream`."""
        return await self.events.read_stream(
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
        """:meth:`EventStore.read_all`."""
        return await self.events.read_all(
            after=after,
            limit=limit,
            categories=categories,
            types=types,
            wait_for_held_back=wait_for_held_back,
        )

    def subscribe(
        self,
        *,
        after: Position = START,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from ``after``, then follow new events live, forever: the engine's own
        :data:`Subscriptions`, else reads whenever the store says events may have come."""
        own = self.capability(Subscriptions)
        if own is not None:
            return own.subscribe(
                after=after, categories=categories, types=types, batch_size=batch_size
            )
        return follow(
            self.events, after=after, categories=categories, types=types, batch_size=batch_size
        )

    async def stream_version(self, stream_id: str) -> int:
        """:meth:`EventStore.stream_version`."""
        return await self.events.stream_version(stream_id)

    async def head(self) -> Position:
        """:meth:`EventStore.head`."""
        return await self.events.head()

    async def find_event(self, event_id: str) -> RecordedEvent | None:
        """:meth:`EventStore.find_event`."""
        return await self.events.find_event(event_id)

    async def wait_for_events(self, after: Position, max_wait: float) -> None:
        """:meth:`EventStore.wait_for_events`."""
        await self.events.wait_for_events(after, max_wait)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """:meth:`SnapshotStore.save_snapshot`; CapabilityMissing for an engine without it."""
        await self.require(Snapshots).save_snapshot(snapshot)

    async def load_snapshot(
        self,
        stream_id: str,
        *,
        max_version: int | None = None,
        max_recorded_at: float | None = None,
    ) -> Snapshot | None:
        """:meth:`SnapshotStore.load_snapshot`; None for an engine without snapshots."""
        if self._snapshots is None:
            return None
        return await self._snapshots.load_snapshot(
            stream_id, max_version=max_version, max_recorded_at=max_recorded_at
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
