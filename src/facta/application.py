"""The command side: load an aggregate, decide, append with the expected version, retry.

Commands for one stream are serialised within the process (a per-stream lock), so they never
conflict with each other; conflicts with other processes are retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from facta import decisions
from facta._commands import event_id as _event_id
from facta._commands import fingerprint as _fingerprint
from facta._commands import metadata as _metadata
from facta._locks import KeyedLocks
from facta._snapshots import Snapshotter
from facta.cache import StateCache
from facta.codec import Codec
from facta.decisions import Decision, DecisionResult, Model
from facta.domain import Aggregate, AnyEvent
from facta.errors import (
    CommandIdReused,
    DuplicateEventId,
    InvalidStreamId,
    StreamGone,
    StreamNotFound,
    WrongExpectedVersion,
)
from facta.observability import tracing
from facta.personal.fields import personal_fields
from facta.results import CommandResult, EventEnvelope, StateAt
from facta.store.base import (
    RecordedEvent,
    TransactionHook,
    validate_stream_id,
)
from facta.store.engine import (
    Boundaries,
    Engine,
    InlineTransactions,
    Snapshots,
    refuse_personal,
)
from facta.tombstones import check_loaded, gone

log = logging.getLogger("facta.application")

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E", bound=AnyEvent)


class Application:
    """Executes commands against aggregates stored in an engine (``open_store(url)``).

    ``max_retries`` bounds the retries after a conflict with another process;
    ``cache_size`` bounds the state cache (0 turns it off); ``transaction_hook`` runs inside
    every append's transaction (inline projections: the engine must have the
    InlineTransactions capability, else CapabilityMissing). Snapshots are taken and used
    where the engine has the Snapshots capability.
    """

    def __init__(
        self,
        store: Engine,
        *,
        codec: Codec | None = None,
        max_retries: int = 10,
        cache_size: int = 10_000,
        transaction_hook: TransactionHook | None = None,
    ) -> None:
        self.store = store
        self.codec = codec or Codec()
        self.max_retries = max_retries
        # States hold decrypted personal data: trusted no longer than the keys that opened it,
        # unless the key store shows that no subject was forgotten since.
        self.cache = StateCache.for_vault(cache_size, store.vault)
        self.transaction_hook = transaction_hook
        self._events = store.events
        self.snapshots = Snapshotter(store.capability(Snapshots))
        self._inline = None if transaction_hook is None else store.require(InlineTransactions)
        # An engine without keys cannot store personal fields: refused rather than in clear.
        self._unsealed = store.vault is None
        self._locks = KeyedLocks()
        self._without_personal: dict[type[Any], bool] = {}

    def _lasting(self, aggregate: Aggregate[Any, Any, Any]) -> bool:
        """Whether ``aggregate``'s states hold no personal data (none of its event classes
        has a personal field), so that the state cache keeps them past the key cache's age:
        only a state folded from personal fields must not outlive a forget elsewhere."""
        kind = type(aggregate)
        lasting = self._without_personal.get(kind)
        if lasting is None:
            try:
                lasting = not any(personal_fields(cls) for cls in kind.event_types)
            except TypeError:  # a declaration that cannot work: refused when encoding it
                lasting = False
            self._without_personal[kind] = lasting
        return lasting

    @staticmethod
    def stream_id(aggregate: Aggregate[Any, Any, Any], entity_id: str) -> str:
        """The stream of one aggregate instance: ``{aggregate.name}-{entity_id}``."""
        if not entity_id:
            raise InvalidStreamId("the id must not be empty")
        return validate_stream_id(f"{aggregate.name}-{entity_id}")

    def holding(self, stream_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the lock this application's commands on ``stream_id`` take (they wait until
        it is released): for work on a stream that must not race them in this process."""
        return self._locks.hold(stream_id)

    async def execute(
        self,
        aggregate: Aggregate[S, C, E],
        entity_id: str,
        command: C,
        *,
        expected_version: int | None = None,
        command_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CommandResult[S, E]:
        """Decide ``command`` against the current state and append the events.

        ``command`` is one of the aggregate's command types (a type checker refuses another).
        Raises the aggregate's DomainError unchanged when it rejects the command (nothing is
        written); WrongExpectedVersion when ``expected_version`` is given and the stream is
        elsewhere, or when conflicts outlast the retries. With ``command_id``, executing the
        same command again returns the first result and writes nothing; the id is scoped to
        the stream, and executing a different command under it raises CommandIdReused
        (the events keep a fingerprint of the command in their metadata). A command that
        writes nothing (rejected, or deciding no events) records no id: a repeat runs again.
        """
        stream_id = self.stream_id(aggregate, entity_id)
        self.codec.register_aggregate(aggregate)
        fingerprint = None if command_id is None else _fingerprint(command)
        meta = _metadata(metadata, command_id, fingerprint)
        scope = tracing.command_scope(aggregate.name, stream_id, command)
        # A command that usually starts a stream is first tried as its first event, unread.
        guess = expected_version is None and isinstance(command, aggregate.creation_commands)
        with scope:
            async with self._locks.hold(stream_id):
                meta = scope.stamp(meta)
                wrong_guess = 0  # a creation guessed wrong is not one of the retries
                for attempt in range(self.max_retries + 2):
                    if command_id is not None:
                        earlier = await self._earlier_result(
                            aggregate, stream_id, command_id, fingerprint
                        )
                        if earlier is not None:
                            return earlier
                    if not self.cache.trusted():
                        await self.cache.check_trust()
                    epoch = self.cache.epoch
                    guess = guess and self.cache.get(stream_id) is None
                    if guess:
                        state, version = aggregate.initial, 0
                    else:
                        state, version = await self._current(aggregate, stream_id, expected_version)
                    if expected_version is not None and version != expected_version:
                        raise WrongExpectedVersion(stream_id, expected_version, version)
                    events = aggregate.decide(state, command)
                    if not events:
                        if guess:  # nothing to write on a new stream: is it new? load it
                            guess, wrong_guess = False, 1
                            continue
                        return CommandResult(stream_id, version, (), state)
                    new = [
                        self.codec.encode(
                            event,
                            metadata=meta,
                            event_id=None
                            if command_id is None
                            else _event_id(stream_id, command_id, i),
                        )
                        for i, event in enumerate(events)
                    ]
                    if self._unsealed:
                        refuse_personal(self.store, new)
                    try:
                        with scope.appending(len(new), version):
                            if self._inline is None:
                                appended = await self._events.append(stream_id, new, version)
                            else:
                                appended = await self._inline.append(
                                    stream_id, new, version, hook=self.transaction_hook
                                )
                    except DuplicateEventId:
                        # Another process stored this command id first, with another number
                        # of events: a different command (CommandIdReused), or the result.
                        if command_id is None:
                            raise
                        earlier = await self._earlier_result(
                            aggregate, stream_id, command_id, fingerprint
                        )
                        if earlier is None:
                            raise
                        return earlier
                    except WrongExpectedVersion:
                        if guess:  # the stream was there after all: load it and decide again
                            guess, wrong_guess = False, 1
                            continue
                        tried = attempt - wrong_guess
                        scope.conflict()
                        if expected_version is not None or tried == self.max_retries:
                            self.cache.discard(stream_id)
                            raise
                        if tried == 0 and await self._caught_up(aggregate, stream_id, version):
                            # Decided on a cached state that another process had moved past
                            # (several app processes on one store): read just what it
                            # appended and decide again, at once. Only a second conflict is
                            # contention worth backing off from.
                            continue
                        self.cache.discard(stream_id)
                        await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
                        continue
                    stored = appended.events[0]
                    if stored.version != version + 1 or (
                        command_id is not None and stored.metadata != new[0].metadata
                    ):
                        # The store returned an earlier append of these event ids: another
                        # process executed this command id first (at the same version, too,
                        # when both were decided on one state). Answer with its result.
                        assert command_id is not None  # random event ids never repeat
                        earlier = await self._earlier_result(
                            aggregate, stream_id, command_id, fingerprint
                        )
                        assert earlier is not None
                        return earlier
                    new_state = aggregate.fold(events, state)
                    # Only a creation has no entry to inherit its kind from (personal or lasting).
                    lasting = guess and self._lasting(aggregate)
                    self.cache.put(
                        stream_id,
                        new_state,
                        appended.version,
                        derived=True,
                        lasting=lasting,
                        epoch=epoch,
                    )
                    self.snapshots.maybe_take(aggregate, appended.events, new_state)
                    scope.done(appended.version, len(events))
                    return CommandResult(
                        stream_id, appended.version, tuple(events), new_state, appended.position
                    )
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def decide(
        self,
        decision: Decision[Any, C, E],
        command: C,
        *,
        command_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> DecisionResult[E]:
        """Decide ``command`` on the events ``decision.model(command)`` selects and append the
        events it causes (with their tags), on the condition that no event the model selects
        was appended since it read them.

        Raises the decision's DomainError unchanged when it rejects the command (nothing is
        written); AppendConditionFailed when racing appends outlast the retries (each retry
        reads and decides again); CapabilityMissing on an engine without Boundaries. With
        ``command_id``, deciding the same command again returns the first result and writes
        nothing; the id is scoped to the decision's name, and a different command under it
        raises CommandIdReused. Metadata flows to the events as for :meth:`execute`. The
        events bypass the ``transaction_hook``: inline projections do not see them (async
        projections, the relay and subscriptions do, as every event in the log).
        """
        return await decisions.execute(
            self.store.require(Boundaries),
            self._events,
            self.codec,
            decision,
            command,
            max_retries=self.max_retries,
            command_id=command_id,
            metadata=metadata,
            check=(lambda new: refuse_personal(self.store, new)) if self._unsealed else None,
        )

    async def state_of(self, model: Model[S]) -> S:
        """The state ``model`` folds from the store now: what a decision would decide on
        (CapabilityMissing on an engine without Boundaries)."""
        state, _ = await decisions.read_state(self.store.require(Boundaries), self.codec, model)
        return state

    async def _caught_up(
        self, aggregate: Aggregate[S, Any, Any], stream_id: str, version: int
    ) -> bool:
        """After a conflict at ``version``: bring the cached state (which must be at that
        version) up to the stream's head with the events appended since, and say whether it
        was; else forget it (the next attempt loads the stream)."""
        cached = self.cache.get(stream_id)
        if cached is None or cached[1] != version:
            self.cache.discard(stream_id)
            return False
        epoch = self.cache.epoch
        state, head, read = await self._since(aggregate, stream_id, cached[0], version)
        if not read:  # not behind after all (the stream was rewritten): load it afresh
            self.cache.discard(stream_id)
            return False
        self.cache.put(stream_id, state, head, derived=True, epoch=epoch)
        return True

    async def _since(
        self, aggregate: Aggregate[S, Any, Any], stream_id: str, state: S, version: int
    ) -> tuple[S, int, int]:
        """``state`` at ``version`` brought up to the stream's head: the state, its version
        and how many events were read."""
        records = await self._events.read_stream(stream_id, from_version=version + 1)
        check_loaded(stream_id, records, version + 1)  # deleted since it was cached
        decode, evolve = self.codec.decode, aggregate.evolve
        for record in records:
            event = decode(record)
            if event is not None:
                state = evolve(state, event)
            version = record.version
        return state, version, len(records)

    async def _current(
        self, aggregate: Aggregate[S, Any, Any], stream_id: str, expected: int | None
    ) -> tuple[S, int]:
        cached = self.cache.get(stream_id)
        # A cache entry behind a pinned version may just be stale: only trust it when it agrees.
        if cached is not None and (expected is None or cached[1] == expected):
            return cached[0], cached[1]
        epoch = self.cache.epoch
        loaded = await self._load(aggregate, stream_id, None, None)
        lasting = self._lasting(aggregate)
        self.cache.put(stream_id, loaded.state, loaded.version, lasting=lasting, epoch=epoch)
        return loaded.state, loaded.version

    async def load(
        self,
        aggregate: Aggregate[S, Any, Any],
        entity_id: str,
        *,
        version: int | None = None,
        at: float | None = None,
    ) -> StateAt[S]:
        """The state now, at ``version``, or as it was at Unix time ``at``.

        Uses the nearest usable snapshot at or below the point. A stream with no events loads
        as the initial state at version 0. Raises StreamNotFound when ``version`` is past the
        stream's end.
        """
        self.codec.register_aggregate(aggregate)
        stream_id = self.stream_id(aggregate, entity_id)
        if version is not None or at is not None:
            return await self._load(aggregate, stream_id, version, at)
        # Now: from the cached state and what was appended since (usually nothing: one read
        # that finds no rows), instead of a snapshot and the events after it.
        with tracing.loading(stream_id, None):
            if not self.cache.trusted():
                await self.cache.check_trust()
            epoch = self.cache.epoch
            cached = self.cache.get(stream_id)
            if cached is None:
                loaded = await self._replay(aggregate, stream_id, None, None)
                lasting = self._lasting(aggregate)
                self.cache.put(
                    stream_id, loaded.state, loaded.version, lasting=lasting, epoch=epoch
                )
                return loaded
            state, head, read = await self._since(aggregate, stream_id, *cached)
        if read:  # folded from the cached state: personal or lasting as that one is
            self.cache.put(stream_id, state, head, derived=True, epoch=epoch)
        return StateAt(stream_id, head, state)

    async def _load(
        self,
        aggregate: Aggregate[S, Any, Any],
        stream_id: str,
        version: int | None,
        at: float | None,
    ) -> StateAt[S]:
        with tracing.loading(stream_id, version):
            return await self._replay(aggregate, stream_id, version, at)

    async def _replay(
        self,
        aggregate: Aggregate[S, Any, Any],
        stream_id: str,
        version: int | None,
        at: float | None,
    ) -> StateAt[S]:
        state, loaded_version = aggregate.initial, 0
        found = None
        if aggregate.snapshot_every:
            found = await self.snapshots.load(aggregate, stream_id, version, at)
            if found is not None:
                state, loaded_version = found
        records = await self._events.read_stream(
            stream_id, from_version=loaded_version + 1, to_version=version
        )
        if at is not None:  # as it was then: a later tombstone does not count
            records = list(itertools.takewhile(lambda r: r.recorded_at <= at, records))
        if gone(records, loaded_version + 1) and found is None:
            # Deleted, or its first events erased: a truncated stream keeps a snapshot where
            # its events now start, whatever the aggregate's snapshot_every.
            found = await self.snapshots.load(aggregate, stream_id, version, at)
            if found is not None:
                state, loaded_version = found
                records = [r for r in records if r.version > loaded_version]
        check_loaded(stream_id, records, loaded_version + 1)
        tracing.loaded(len(records), loaded_version)
        decode, evolve = self.codec.decode, aggregate.evolve
        for record in records:
            event = decode(record)
            if event is not None:
                state = evolve(state, event)
            loaded_version = record.version
        if version is not None and loaded_version < version:
            if at is None and await self._events.stream_version(stream_id) >= version:
                raise StreamGone(stream_id, f"version {version} was erased")
            raise StreamNotFound(stream_id, f"it has no version {version}")
        return StateAt(stream_id, loaded_version, state)

    async def history(
        self,
        aggregate: Aggregate[Any, Any, E],
        entity_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[EventEnvelope[E]]:
        """The stream's decoded events in version order (deprecated types left out)."""
        self.codec.register_aggregate(aggregate)
        records = await self._events.read_stream(
            self.stream_id(aggregate, entity_id),
            from_version=from_version,
            to_version=to_version,
            limit=limit,
            backwards=backwards,
        )
        return self.decode_all(records)  # type: ignore[return-value]

    def decode_all(self, records: Sequence[RecordedEvent]) -> list[EventEnvelope[AnyEvent]]:
        """Decode stored events, leaving out deprecated types."""
        decode = self.codec.decode
        envelopes = []
        for record in records:
            event = decode(record)
            if event is not None:
                envelopes.append(EventEnvelope(event, record))
        return envelopes

    async def _earlier_result(
        self,
        aggregate: Aggregate[S, Any, E],
        stream_id: str,
        command_id: str,
        fingerprint: str | None,
    ) -> CommandResult[S, E] | None:
        """The result of the command stored under ``command_id``; None when there is none;
        CommandIdReused when it was another command (events stored before fingerprints
        were kept count as the same)."""
        first = await self._events.find_event(_event_id(stream_id, command_id, 0))
        if first is None:
            return None
        stored = first.meta.get("command_fingerprint")
        if stored is not None and stored != fingerprint:
            raise CommandIdReused(stream_id, command_id)
        records = await self._events.read_stream(stream_id, from_version=first.version)
        mine = []
        for record in records:
            if record.meta.get("command_id") != command_id:
                break
            mine.append(record)
        loaded = await self._load(aggregate, stream_id, mine[-1].version, None)
        events = tuple(e.event for e in self.decode_all(mine))
        return CommandResult(stream_id, loaded.version, events, loaded.state, mine[-1].position)  # type: ignore[arg-type]

    async def drain(self) -> None:
        """Wait for background work (snapshots) to finish."""
        await self.snapshots.drain()


__all__ = ["Application", "CommandResult", "EventEnvelope", "StateAt"]
