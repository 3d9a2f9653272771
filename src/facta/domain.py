"""The domain vocabulary: events, commands, deciders and domain errors.

This module is pure: it imports nothing of facta's storage, drivers or web layers, so a domain
written against it can be tested without any I/O.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

import msgspec

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns a stored event's JSON object at one schema version into the next version's."""

ENTITY_ID_PATTERN = r"^[A-Za-z0-9_.:@+=~-]{1,200}$"
"""What an entity id may be: 1 to 200 of the characters a stream id allows (the stream
``{aggregate}-{id}`` then fits the store's 300)."""

MAX_ENTITY_ID_LENGTH = 200

EntityId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_ENTITY_ID_LENGTH,
        pattern=ENTITY_ID_PATTERN,
        description="An entity id: 1-200 letters, digits or _.:@+=~-",
    ),
]
"""A command field naming another entity (``target: EntityId``): decoding (the HTTP edge)
refuses anything else, and the OpenAPI document says so. A command built in Python is not
checked by msgspec: call :func:`check_entity_id` in its ``__post_init__``."""

_ENTITY_ID = re.compile(ENTITY_ID_PATTERN)


def check_entity_id(value: str, what: str = "id") -> str:
    """``value`` if it is a usable entity id (see :data:`EntityId`); ValueError otherwise,
    naming ``what``. Whole-string: a trailing newline, which a ``$`` lets through, is not."""
    if not isinstance(value, str) or _ENTITY_ID.fullmatch(value) is None:
        shown = type(value).__name__
        if isinstance(value, str):
            shown = repr(value) if len(value) <= 40 else f"{value[:40]!r}... ({len(value)} long)"
        raise ValueError(
            f"{what} must be 1-{MAX_ENTITY_ID_LENGTH} letters, digits or _.:@+=~-, not {shown}"
        )
    return value


class Tag:
    """Marks an event field whose value tags the event, for consistency boundaries:
    ``course_id: Annotated[str, Tag("course")]`` tags an event whose ``course_id`` is ``"c1"``
    with ``"course:c1"``. A field whose value is None gives no tag. A tag is at most 200
    characters in all (the store refuses a longer one)."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        if not prefix or ":" in prefix or not prefix.isprintable():
            raise ValueError(f"a tag prefix must be non-empty, printable, without ':': {prefix!r}")
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"Tag({self.prefix!r})"


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""No redacted value given: the field type's own (see :class:`Personal`)."""

REDACTED = "[redacted]"
"""What a personal string field reads as once its subject is forgotten (unless it names
another redacted value)."""


class Personal:
    """Marks an event field as personal data of a data subject, to be encrypted with the
    subject's key when stored and forgotten with it: ``email: Annotated[str,
    Personal(subject="user_id")]``. ``subject`` names the event field that holds the
    subject's id; None (the default) makes the stream the event is appended to the subject.
    ``redacted`` is the value every reader gets once the subject is forgotten; by default
    ``"[redacted]"`` for a string, None for an optional field, 0, 0.0, False, an empty
    container or ``""`` of bytes for the other plain types (another type must name one).

    An event class may also declare them all at once: ``personal_data = {"email":
    Personal(subject="user_id")}``. Only top-level fields of msgspec events can be personal.
    """

    __slots__ = ("redacted", "subject")

    def __init__(self, subject: str | None = None, *, redacted: Any = UNSET) -> None:
        if subject is not None and not subject.isidentifier():
            raise ValueError(f"subject must name a field of the event, not {subject!r}")
        self.subject = subject
        self.redacted = redacted

    def __repr__(self) -> str:
        shown = "" if self.redacted is UNSET else f", redacted={self.redacted!r}"
        return f"Personal(subject={self.subject!r}{shown})"


_TAG_FIELDS: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def _tag_fields(cls: type[Any]) -> tuple[tuple[str, str], ...]:
    """(field, prefix) for each field of ``cls`` marked with a :class:`Tag`: found on first
    use rather than at class creation, when the annotations may name classes not yet defined."""
    found = _TAG_FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        found = tuple(
            (name, marker.prefix)
            for name in cls.__struct_fields__
            for marker in getattr(hints.get(name), "__metadata__", ())
            if isinstance(marker, Tag)
        )
        _TAG_FIELDS[cls] = found
    return found


class Event(msgspec.Struct, frozen=True, tag=True, tag_field="type"):
    """An immutable fact that happened, JSON-tagged by its class name in a ``"type"`` field.

    Its schema evolution is declared on the class, so that every reader that knows the class
    (a command's load, a projection worker, the relay, ``facta events verify``) decodes its
    old shapes the same way, whether or not a command ran in that process:

    - ``schema_version``: the version of this class's shape; raise it when the shape changes;
    - ``upcasters``: for each older version, the function that turns its stored JSON object
      into the next version's (``{1: v1_to_v2, 2: v2_to_v3}``); they are chained on read;
    - ``renamed_from``: type names this class was stored under before a rename.

    Its tags (what consistency boundaries select events by) are declared on its fields with
    :class:`Tag`, or computed by overriding :meth:`event_tags`. Fields holding personal data
    are marked with :class:`Personal` (or listed in ``personal_data``): they are stored
    encrypted and can be forgotten (:mod:`facta.personal`).
    """

    schema_version: ClassVar[int] = 1
    upcasters: ClassVar[Mapping[int, Upcaster]] = {}
    renamed_from: ClassVar[tuple[str, ...]] = ()
    personal_data: ClassVar[Mapping[str, Personal]] = {}
    """Fields holding personal data, by name (or mark each with ``Annotated[..., Personal()]``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_evolution(cls)

    def event_tags(self) -> tuple[str, ...]:
        """The tags this event carries when appended (consistency boundaries select events
        by them): ``prefix:value`` for each field marked with a :class:`Tag`. Override it
        for other tags (``return (*super().event_tags(), "vip")``); it must be pure, since
        the tags a decision reads must be the ones the same event is stored with."""
        fields = _tag_fields(type(self))
        if not fields:
            return ()
        tags = []
        for name, prefix in fields:
            value = getattr(self, name)
            if value is not None:
                tags.append(f"{prefix}:{value}")
        return tuple(tags)


def check_evolution(cls: type[Any]) -> None:
    """TypeError unless the schema evolution an event class declares (``schema_version``,
    ``upcasters``, ``renamed_from``) is well formed: what every event base class checks when
    it is subclassed."""
    version = cls.schema_version
    if not isinstance(version, int) or version < 1:
        raise TypeError(f"{cls.__name__}.schema_version must be a positive int")
    for from_version, upcaster in cls.upcasters.items():
        if not (isinstance(from_version, int) and 1 <= from_version < version):
            raise TypeError(
                f"{cls.__name__}.upcasters: {from_version!r} is not a version below"
                f" schema_version {version}"
            )
        if not callable(upcaster):
            raise TypeError(f"{cls.__name__}.upcasters[{from_version}] is not callable")
    if isinstance(cls.renamed_from, str):
        raise TypeError(f"{cls.__name__}.renamed_from must be a tuple of type names")


class AnyEvent(Protocol):
    """What facta needs of an event, whatever library its class is written with: an
    :class:`Event` (msgspec) or a ``facta.pydantic.PydanticEvent``. Type parameters of
    aggregates and decisions are bound by it.

    Its class also declares ``upcasters`` and ``renamed_from`` (see :class:`Event`), left
    out here so that a subclass may narrow their declared types."""

    schema_version: ClassVar[int]

    def event_tags(self) -> tuple[str, ...]:
        """The tags this event is appended with."""
        ...


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
C = TypeVar("C")
E = TypeVar("E", bound=AnyEvent)

# The classes events and commands may derive from: msgspec's, and those of each model library
# adapted to facta (facta.pydantic adds its own when it is imported: see accept_model_bases).
_EVENT_BASES: list[type[Any]] = [Event]
_COMMAND_BASES: list[type[Any]] = [Command]


def accept_model_bases(event: type[Any], command: type[Any]) -> None:
    """Let subclasses of ``event`` and ``command`` stand as the events and commands of
    aggregates and decisions: for a module adapting another model library to facta (as
    ``facta.pydantic`` does), which must also make the codec able to store them."""
    if event not in _EVENT_BASES:
        _EVENT_BASES.append(event)
    if command not in _COMMAND_BASES:
        _COMMAND_BASES.append(command)


class Aggregate(Generic[S, C, E]):
    """A consistency boundary written as a decider.

    Subclass it with the state, command and event types as parameters (msgspec classes,
    or pydantic models from :mod:`facta.pydantic`) and give it a ``name``
    (the stream category, without ``-``), an ``initial`` state, ``decide`` and ``evolve``.
    Both functions must be pure: no I/O, no clock, no randomness, so that a retry after a
    conflict is always safe.

    ``deprecated_events`` lists stored type names that are skipped on read (types with no
    class any more; the evolution of the others is declared on their event classes).
    ``state_schema_version`` versions the state's shape for snapshots; ``snapshot_every``
    takes a snapshot every N events (``None``: never). ``creation_commands`` are the
    commands that usually start a stream: the Application decides one on the initial state
    and appends it as the stream's first event without reading the stream first (one write
    where it would take a snapshot lookup, a read and a write); if the stream exists after
    all, the append is refused and the command is decided again on the loaded state, so the
    outcome is the same.
    """

    name: ClassVar[str]
    initial: S
    state_schema_version: ClassVar[int] = 1
    snapshot_every: ClassVar[int | None] = None
    deprecated_events: ClassVar[frozenset[str]] = frozenset()
    creation_commands: ClassVar[tuple[type[Any], ...]] = ()

    # Filled in by __init_subclass__ from the generic parameters.
    state_type: ClassVar[Any]
    command_types: ClassVar[tuple[type[Any], ...]]
    event_types: ClassVar[tuple[type[AnyEvent], ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for moved in ("upcasters", "renamed_events"):
            if moved in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__}.{moved}: schema evolution is declared on the event classes"
                    " now (their upcasters and renamed_from), where every reader sees it"
                )
        for base in getattr(cls, "__orig_bases__", ()):
            if typing.get_origin(base) is Aggregate:
                state, command, event = typing.get_args(base)
                cls.state_type = state
                cls.command_types = _command_classes(command)
                cls.event_types = _event_classes(event)
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


def _command_classes(tp: Any) -> tuple[type[Any], ...]:
    """The command classes a type parameter names (TypeError for another class)."""
    return _union_members(tp, _COMMAND_BASES)


def _event_classes(tp: Any) -> tuple[type[AnyEvent], ...]:
    """The event classes a type parameter names (TypeError for another class)."""
    return _union_members(tp, _EVENT_BASES)


def _union_members(tp: Any, bases: list[type[Any]]) -> tuple[Any, ...]:
    """The classes named by a type that is one class or a union of classes, each a subclass
    of one of ``bases``."""
    if isinstance(tp, TypeVar):
        return ()
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = typing.get_args(tp)
    else:
        members = (tp,)
    allowed = tuple(bases)
    for member in members:
        if not (isinstance(member, type) and issubclass(member, allowed)):
            names = " or ".join(base.__name__ for base in allowed)
            raise TypeError(f"{member!r} is not a subclass of {names}")
    return tuple(members)


def type_name(cls: type[Any]) -> str:
    """The ``"type"`` tag of an event or command class: its msgspec tag (the class name
    unless the class sets another), or a pydantic model's class name."""
    config = getattr(cls, "__struct_config__", None)
    if config is None:
        return cls.__name__
    tag = config.tag
    assert isinstance(tag, str)
    return tag


def stored_type_names(cls: type[AnyEvent]) -> tuple[str, ...]:
    """Every type name events of ``cls`` may be stored under: its own and its old ones."""
    renamed: tuple[str, ...] = getattr(cls, "renamed_from", ())
    return (type_name(cls), *renamed)
