"""What projections and policies have in common: a name, a version, the event types they
handle, and what happens when handling one fails."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from facta.domain import AnyEvent, stored_type_names
from facta.errors import StoreUnavailable
from facta.store._migrations import validate_identifier

OUTAGES: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, StoreUnavailable)
"""Errors that say the store or a service is out of reach, not that the event is bad."""


class EventHandler:
    """The base of :class:`~facta.projections.Projection` and
    :class:`~facta.projections.Policy`: subclass one of them.

    ``name`` (lowercase identifier, at most 40 characters) names its storage and checkpoint;
    ``version`` (a positive int) its meaning; ``event_types`` are the event classes it
    receives (nothing else is read). ``on_error``, ``transient_errors`` and ``retries`` say
    what happens when handling an event fails (see each subclass).
    """

    kind: ClassVar[str] = "handler"
    """What it is called in messages."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    event_types: ClassVar[tuple[type[AnyEvent], ...]] = ()
    on_error: ClassVar[Literal["stop", "park"]] = "stop"
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = OUTAGES
    retries: ClassVar[int] = 3

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is not None:
            validate_identifier(name, f"{cls.kind} name")
        version = cls.__dict__.get("version")
        if version is not None and (not isinstance(version, int) or version < 1):
            raise ValueError(f"{cls.kind} version must be a positive int, not {version!r}")

    @classmethod
    def type_names(cls) -> list[str]:
        """Every type name events of ``event_types`` may be stored under (old names of
        renamed classes included)."""
        return [name for t in cls.event_types for name in stored_type_names(t)]
