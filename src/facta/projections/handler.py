"""What projections and policies have in common: a name, a version, the event types they
handle, and what happens when handling one fails."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from facta.domain import AnyEvent, stored_type_names
from facta.errors import StoreUnavailable
from facta.store._migrations import validate_identifier
from facta.store.base import RecordedEvent
from facta.store.read_models import MAX_PARTITIONS

OUTAGES: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, StoreUnavailable)
"""Errors that say the store or a service is out of reach, not that the event is bad."""


class EventHandler:
    """The base of :class:`~facta.projections.Projection` and
    :class:`~facta.projections.Policy`: subclass one of them.

    ``name`` (lowercase identifier, at most 40 characters) names its storage and checkpoint;
    ``version`` (a positive int) its meaning; ``event_types`` are the event classes it
    receives (nothing else is read). ``on_error``, ``transient_errors`` and ``retries`` say
    what happens when handling an event fails (see each subclass).

    ``partitions`` (1 to 256) splits the events by a stable hash of ``partition_key`` (the
    stream id, by default): each partition has its own checkpoint and lease, so runners in
    several processes share the work, and one key's events are still handled in order, by
    one partition at a time. Every document must be written by one partition only (key the
    documents by what the events are partitioned by). The number belongs to a version:
    raise ``version`` to change it (the new layout is built beside the old one).
    """

    kind: ClassVar[str] = "handler"
    """What it is called in messages."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    event_types: ClassVar[tuple[type[AnyEvent], ...]] = ()
    on_error: ClassVar[Literal["stop", "park"]] = "stop"
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = OUTAGES
    retries: ClassVar[int] = 3
    partitions: ClassVar[int] = 1

    def partition_key(self, record: RecordedEvent) -> str:
        """What ``record``'s partition is chosen by: its stream id, unless overridden (all
        events of one key are handled in order, in one partition)."""
        return record.stream_id

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is not None:
            validate_identifier(name, f"{cls.kind} name")
        partitions = cls.__dict__.get("partitions")
        if partitions is not None and (
            not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS
        ):
            raise ValueError(
                f"{cls.kind} partitions must be an int from 1 to {MAX_PARTITIONS},"
                f" not {partitions!r}"
            )
        version = cls.__dict__.get("version")
        if version is not None and (not isinstance(version, int) or version < 1):
            raise ValueError(f"{cls.kind} version must be a positive int, not {version!r}")

    @classmethod
    def type_names(cls) -> list[str]:
        """Every type name events of ``event_types`` may be stored under (old names of
        renamed classes included)."""
        return [name for t in cls.event_types for name in stored_type_names(t)]
