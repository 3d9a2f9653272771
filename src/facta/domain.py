"""The domain vocabulary: events, commands, deciders and domain errors.

This module is pure: it imports nothing of facta's storage, drivers or web layers, so a domain
written against it can be tested without any I/O.
"""

from __future__ import annotations

import types
import typing
from typing import Any, ClassVar, Generic, TypeVar

import msgspec


class Event(msgspec.Struct, frozen=True, tag=True, tag_field="type"):
    """An immutable fact that happened, JSON-tagged by its class name in a ``"type"`` field.

    ``schema_version`` is the version of this class's shape; raise it when the shape changes
    and register an upcaster for the old one.
    """

    schema_version: ClassVar[int] = 1


class Command(msgspec.Struct, frozen=True, tag=True, tag_field="type", forbid_unknown_fields=True):
    """An intention that a decider may accept (producing events) or reject (raising).

    Decoding refuses fields the command does not have: a misspelt field is an error, never
    silently dropped.
    """


class DomainError(Exception):
    """A command was rejected by a business rule; nothing was written.

    Aggregates raise their own subclasses; the application passes them through unchanged.
    """


S = TypeVar("S")
C = TypeVar("C", bound=Command)
E = TypeVar("E", bound=Event)


class Aggregate(Generic[S, C, E]):
    """A consistency boundary written as a decider.

    Subclass it with the state, command and event types as parameters and give it a ``name``
    (the stream category, without ``-``), an ``initial`` state, ``decide`` and ``evolve``.
    Both functions must be pure: no I/O, no clock, no randomness, so that a retry after a
    conflict is always safe.

    Schema evolution is declared here too, as plain data: ``upcasters`` maps
    ``(event type, from schema version)`` to a function on the stored JSON object,
    ``renamed_events`` maps an old stored type name to its current class, and
    ``deprecated_events`` lists stored type names that are skipped on read.
    ``state_schema_version`` versions the state's shape for snapshots; ``snapshot_every``
    takes a snapshot every N events (``None``: never).
    """

    name: ClassVar[str]
    initial: S
    state_schema_version: ClassVar[int] = 1
    snapshot_every: ClassVar[int | None] = None
    upcasters: ClassVar[
        dict[tuple[str, int], typing.Callable[[dict[str, Any]], dict[str, Any]]]
    ] = {}
    renamed_events: ClassVar[dict[str, type[Event]]] = {}
    deprecated_events: ClassVar[frozenset[str]] = frozenset()

    # Filled in by __init_subclass__ from the generic parameters.
    state_type: ClassVar[Any]
    command_types: ClassVar[tuple[type[Command], ...]]
    event_types: ClassVar[tuple[type[Event], ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if typing.get_origin(base) is Aggregate:
                state, command, event = typing.get_args(base)
                cls.state_type = state
                cls.command_types = _union_members(command, Command)
                cls.event_types = _union_members(event, Event)
        name = cls.__dict__.get("name")
        if name is not None and (not name or "-" in name):
            raise ValueError(f"aggregate name {name!r} must be non-empty and contain no '-'")

    def decide(self, state: S, command: C) -> list[E]:
        """Return the events that ``command`` causes in ``state``, or raise a DomainError."""
        raise NotImplementedError

    def evolve(self, state: S, event: E) -> S:
        """Return the state after ``event``."""
        raise NotImplementedError

    def fold(self, events: typing.Iterable[E], state: S | None = None) -> S:
        """Apply ``events`` in order, starting from ``state`` or the initial state."""
        current = self.initial if state is None else state
        evolve = self.evolve
        for event in events:
            current = evolve(current, event)
        return current


def _union_members(tp: Any, base: type[Any]) -> tuple[Any, ...]:
    """The classes named by a type that is one class or a union of classes."""
    if isinstance(tp, TypeVar):
        return ()
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = typing.get_args(tp)
    else:
        members = (tp,)
    for member in members:
        if not (isinstance(member, type) and issubclass(member, base)):
            raise TypeError(f"{member!r} is not a subclass of {base.__name__}")
    return tuple(members)


def type_name(cls: type[Event] | type[Command]) -> str:
    """The ``"type"`` tag of an event or command class (its class name)."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag
