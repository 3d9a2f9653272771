"""What the Application returns: a command's result, a state at a version, and a decoded
event with the record it was stored as."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from facta.domain import AnyEvent
from facta.store.base import START, Position, RecordedEvent

S = TypeVar("S")
E = TypeVar("E", bound=AnyEvent)


class CommandResult(msgspec.Struct, Generic[S, E], frozen=True):
    """What a command did: the stream's version after it, the events it caused, the new state,
    and the log position of its last event (for read-your-writes on projections)."""

    stream_id: str
    version: int
    events: tuple[E, ...]
    state: S
    position: Position = START


class StateAt(msgspec.Struct, Generic[S], frozen=True):
    """An aggregate's state at a version of its stream (0: the stream has no events)."""

    stream_id: str
    version: int
    state: S


class EventEnvelope(msgspec.Struct, Generic[E], frozen=True, gc=False):
    """A decoded event together with the record it was stored as."""

    event: E
    recorded: RecordedEvent


__all__ = ["CommandResult", "EventEnvelope", "StateAt"]
