"""Decisions: commands decided over a dynamic consistency boundary (dcb.events), in the
decider style.

An aggregate decides on the state of one stream. A decision decides on the state of exactly
the events it needs, wherever they are, chosen by their types and tags: a :class:`Model` of
small :class:`Fold` s (the spec's "projections"; facta keeps that word for read models),
each with an initial state, an ``evolve`` over the event types it wants, and the tags it
selects. :meth:`facta.Application.decide` reads the events of all the folds at once, folds
each into the folds it matches, calls the pure :meth:`Decision.decide`, and appends the
events it returns under the condition that no event any fold would have seen was appended
since the read; when one was, it decides again on the new state, a bounded number of times.

    class Subscribe(Decision[Seats, SubscribeStudent, StudentSubscribed]):
        name = "subscribe"

        def model(self, command: SubscribeStudent) -> Model[Seats]:
            return Model(Seats, capacity=capacity(command.course_id), taken=taken(...))

        def decide(self, state: Seats, command: SubscribeStudent) -> list[StudentSubscribed]:
            if state.taken >= state.capacity:
                raise CourseFull(command.course_id)
            return [StudentSubscribed(command.course_id, command.student_id)]
"""

from __future__ import annotations

import asyncio
import random
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from facta._commands import event_id, fingerprint
from facta._commands import metadata as command_metadata
from facta.codec import Codec
from facta.domain import (
    AnyEvent,
    _command_classes,
    _event_classes,
    stored_type_names,
    type_name,
)
from facta.errors import AppendConditionFailed, CommandIdReused, DuplicateEventId
from facta.store.base import START, EventStore, NewEvent, Position, RecordedEvent
from facta.store.boundaries import AppendCondition, BoundaryStore, Query, QueryItem

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E", bound=AnyEvent)


@dataclass(frozen=True)
class Fold(Generic[S]):
    """One small projection a decision reads: ``evolve(state, event)`` applied, from
    ``initial``, to every event of ``event_types`` (their current and old type names) that
    carries all of ``tags`` (every such event when there are none), in log order.

    ``evolve`` must be pure, as an aggregate's is. Raises ValueError without event types.
    """

    initial: S
    evolve: Callable[[S, Any], S]
    event_types: tuple[type[AnyEvent], ...]
    tags: tuple[str, ...] = ()
    item: QueryItem = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.event_types:
            raise ValueError("a fold needs at least one event type")
        names = tuple(name for cls in self.event_types for name in stored_type_names(cls))
        object.__setattr__(self, "item", QueryItem(names, tuple(self.tags)))


class Model(Generic[S]):
    """The state a decision decides on: named folds, and ``state``, the class (or function)
    that receives their states by those names: ``Model(Seats, capacity=..., taken=...)``
    gives ``Seats(capacity=<state>, taken=<state>)``.

    :attr:`query` selects every event any fold wants (the OR of their items).
    """

    def __init__(self, state: Callable[..., S], /, **folds: Fold[Any]) -> None:
        if not folds:
            raise ValueError("a model needs at least one fold")
        self.state = state
        self.folds: Mapping[str, Fold[Any]] = folds
        self.query = Query(tuple(fold.item for fold in folds.values()))

    def fold(self, events: Iterable[AnyEvent]) -> S:
        """The state after ``events``, each applied to the folds whose types and tags it
        matches (its tags as :meth:`facta.Event.event_tags` gives them): what a decision
        would see after the store held these events. Pure, for tests."""
        states = self._initial()
        for event in events:
            self._apply(states, type_name(type(event)), event.event_tags(), event)
        return self.state(**states)

    def _initial(self) -> dict[str, Any]:
        return {name: fold.initial for name, fold in self.folds.items()}

    def _apply(
        self, states: dict[str, Any], kind: str, tags: Sequence[str], event: AnyEvent
    ) -> None:
        for name, fold in self.folds.items():
            if fold.item.matches(kind, tags):
                states[name] = fold.evolve(states[name], event)


class Decision(Generic[S, C, E]):
    """A command decided over a consistency boundary, written as a decider.

    Subclass it with the state, command and event types as parameters, give it a ``name``
    (it scopes command ids), ``model(command)``, the folds to read for that command, and
    ``decide(state, command)``, the events it causes or a DomainError to reject it. Both
    must be pure: a retry after a racing append calls them again.
    """

    name: ClassVar[str]
    command_types: ClassVar[tuple[type[Any], ...]] = ()
    event_types: ClassVar[tuple[type[AnyEvent], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if typing.get_origin(base) is Decision:
                _, command, event = typing.get_args(base)
                cls.command_types = _command_classes(command)
                cls.event_types = _event_classes(event)
        name = cls.__dict__.get("name")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"decision name {name!r} must be a non-empty string")

    def model(self, command: C) -> Model[S]:
        """The folds ``command`` is decided on."""
        raise NotImplementedError

    def decide(self, state: S, command: C) -> list[E]:
        """Return the events that ``command`` causes in ``state``, or raise a DomainError."""
        raise NotImplementedError


class DecisionResult(msgspec.Struct, Generic[E], frozen=True):
    """What a decision did: the events it appended, the stream they were written to, and the
    log position of the last one (for read-your-writes on projections). A decision that
    caused no events has an empty ``stream_id`` and the position its read reached."""

    events: tuple[E, ...]
    stream_id: str
    position: Position = START


async def read_state(
    boundaries: BoundaryStore, codec: Codec, model: Model[S]
) -> tuple[S, Position | None]:
    """The model's state from the store, and the ``after`` its append condition names."""
    for fold in model.folds.values():
        for cls in fold.event_types:
            codec.register(cls)
    read = await boundaries.read(model.query)
    states = model._initial()
    decode = codec.decode
    for record in read.events:
        event = decode(record)
        if event is not None:  # a deprecated type: skipped, as on every read path
            model._apply(states, record.type, record.tags, event)
    return model.state(**states), read.after


async def execute(
    boundaries: BoundaryStore,
    log: EventStore,
    codec: Codec,
    decision: Decision[Any, C, E],
    command: C,
    *,
    max_retries: int,
    command_id: str | None,
    metadata: Mapping[str, Any] | None,
    check: Callable[[Sequence[NewEvent]], None] | None = None,
) -> DecisionResult[E]:
    """Decide ``command`` and append under the model's condition, retrying after a racing
    append: what :meth:`facta.Application.decide` does (see there). ``check`` may refuse the
    encoded events before they are appended (by raising)."""
    for cls in type(decision).event_types:
        codec.register(cls)
    scope = f"decision-{decision.name}"
    stamp = None if command_id is None else fingerprint(command)
    meta = command_metadata(metadata, command_id, stamp)
    for attempt in range(max_retries + 1):
        if command_id is not None:
            earlier = await _earlier_result(log, codec, scope, command_id, stamp)
            if earlier is not None:
                return earlier  # type: ignore[return-value]
        model = decision.model(command)
        state, after = await read_state(boundaries, codec, model)
        events = decision.decide(state, command)
        if not events:
            return DecisionResult((), "", START if after is None else after)
        new = [
            codec.encode(
                event,
                metadata=meta,
                event_id=None if command_id is None else event_id(scope, command_id, i),
            )
            for i, event in enumerate(events)
        ]
        if check is not None:
            check(new)
        try:
            appended = await boundaries.append(new, AppendCondition(model.query, after))
        except AppendConditionFailed:
            if attempt == max_retries:
                raise
            # Jittered, so that racers that failed together do not read again together.
            await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
            continue
        except DuplicateEventId:
            # Another process stored this command id first with other events: the same
            # command decided on another state (its result), or another one (CommandIdReused).
            if command_id is None:
                raise
            earlier = await _earlier_result(log, codec, scope, command_id, stamp)
            if earlier is None:
                raise
            return earlier  # type: ignore[return-value]
        if command_id is not None and not _same(appended.events, new):
            # The store answered with an earlier append of these event ids: another process
            # decided this command first (perhaps on another state). Its events are the result.
            earlier = await _earlier_result(log, codec, scope, command_id, stamp)
            assert earlier is not None
            return earlier  # type: ignore[return-value]
        return DecisionResult(tuple(events), appended.stream_id, appended.position)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _same(stored: Sequence[RecordedEvent], new: Sequence[NewEvent]) -> bool:
    return len(stored) == len(new) and all(
        s.data == n.data and s.metadata == n.metadata for s, n in zip(stored, new, strict=True)
    )


async def _earlier_result(
    log: EventStore, codec: Codec, scope: str, command_id: str, stamp: str | None
) -> DecisionResult[AnyEvent] | None:
    """The result of the decision stored under ``command_id``; None when there is none;
    CommandIdReused when it was another command."""
    first = await log.find_event(event_id(scope, command_id, 0))
    if first is None:
        return None
    if first.meta.get("command_fingerprint") != stamp:
        raise CommandIdReused(scope, command_id)
    records = await log.read_stream(first.stream_id, from_version=first.version)
    mine = [r for r in records if r.meta.get("command_id") == command_id]
    events = tuple(e for e in map(codec.decode, mine) if e is not None)
    return DecisionResult(events, first.stream_id, mine[-1].position)


__all__ = ["Decision", "DecisionResult", "Fold", "Model"]
