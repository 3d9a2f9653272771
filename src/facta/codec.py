"""Encoding events to stored JSON and decoding them back, upcasting old shapes on the way.

The fast path — a stored event whose type and schema version are current — is one msgspec
decode into the class (one pydantic validation for a pydantic model, see
:mod:`facta.pydantic`). Anything else (an old schema version, a renamed type, a deprecated
type) goes through the JSON object: renamed, upcast step by step, then converted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from facta._formats import model_format
from facta._ids import new_uuid
from facta.domain import Aggregate, AnyEvent, Upcaster, type_name
from facta.errors import EventDecodeError, UnknownEventType
from facta.personal.fields import PersonalField, personal_fields
from facta.store.base import NewEvent, RecordedEvent, Seal
from facta.tombstones import StreamDeleted

__all__ = ["Codec", "Upcaster"]

_Writer = tuple[str, int, Callable[[Any], bytes], tuple[PersonalField, ...]]


def _seals(event: AnyEvent, fields: tuple[PersonalField, ...]) -> tuple[Seal, ...]:
    """What the engine encrypts of ``event``: each personal field, with its subject's id
    (None, for the stream, when the field names none or the subject field is None)."""
    seals = []
    for field in fields:
        subject = None if field.subject is None else getattr(event, field.subject)
        seals.append(Seal(field.field, None if subject is None else str(subject), field.redacted))
    return tuple(seals)


class Codec:
    """A registry of event classes by type name, with their upcasters, renames and deprecations.

    Registering an event class registers the schema evolution it declares (its ``upcasters``
    and ``renamed_from``), so a codec built from the event types decodes their old shapes
    before any command has run. Event classes are msgspec :class:`~facta.Event` s or
    ``facta.pydantic.PydanticEvent`` s, mixed as needed: each class's format is found once,
    when it is registered or first encoded.
    """

    def __init__(self, events: Iterable[type[AnyEvent]] = ()) -> None:
        self._classes: dict[str, type[AnyEvent]] = {}
        # type name -> (current schema version, decode): the fast path.
        self._current: dict[str, tuple[int, Callable[[bytes], Any]]] = {}
        # type name -> the class from its JSON object: the path of upcast and renamed events.
        self._convert: dict[str, Callable[[dict[str, Any]], Any]] = {}
        # class -> (type name, schema version, encode, personal fields): what encoding needs,
        # found once.
        self._writers: dict[type[Any], _Writer] = {}
        self._renamed: dict[str, str] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._deprecated: set[str] = set()
        self._registered_aggregates: set[type[Aggregate[Any, Any, Any]]] = set()
        self._encode = msgspec.json.Encoder(decimal_format="number").encode
        self.register(StreamDeleted)  # any stream may end in one: every reader decodes it
        for cls in events:
            self.register(cls)

    def register(self, cls: type[AnyEvent]) -> None:
        """Make ``cls`` decodable under its type name, its old names and its old schema
        versions. Registering it again is a no-op; another class under a taken name is a
        ValueError."""
        name = type_name(cls)
        known = self._classes.get(name)
        if known is cls:
            return
        if known is not None:
            raise ValueError(f"event type {name!r} is registered for {known!r} already")
        self._classes[name] = cls
        model = model_format(cls, name)
        if model is None:
            self._current[name] = (cls.schema_version, msgspec.json.Decoder(cls).decode)
            self._convert[name] = lambda data: msgspec.convert(data, cls)
        else:
            decode = model.decode
            self._current[name] = (cls.schema_version, decode)
            # Through JSON, so that old events are read with the rules of stored ones.
            self._convert[name] = lambda data: decode(msgspec.json.encode(data))
        renamed: tuple[str, ...] = getattr(cls, "renamed_from", ())
        for old_name in renamed:
            self._rename(old_name, name)
        upcasters: dict[int, Upcaster] = dict(getattr(cls, "upcasters", {}))
        for from_version, upcaster in upcasters.items():
            self.add_upcaster(name, from_version, upcaster)

    def register_aggregate(self, aggregate: Aggregate[Any, Any, Any]) -> None:
        """Register an aggregate's event classes and its deprecated event types."""
        kind = type(aggregate)
        if kind in self._registered_aggregates:
            return
        for cls in kind.event_types:
            self.register(cls)
        for name in kind.deprecated_events:
            self.deprecate(name)
        self._registered_aggregates.add(kind)

    def rename(self, old_name: str, cls: type[AnyEvent]) -> None:
        """Read events stored under ``old_name`` as ``cls`` (after upcasting them), for a
        class that cannot declare it in its ``renamed_from``."""
        self.register(cls)
        self._rename(old_name, type_name(cls))

    def _rename(self, old_name: str, name: str) -> None:
        taken = self._renamed.get(old_name, name)
        if taken != name or old_name in self._classes:
            raise ValueError(f"old event type {old_name!r} is read as {taken!r} already")
        self._renamed[old_name] = name

    def add_upcaster(self, name: str, from_version: int, upcaster: Upcaster) -> None:
        """Register the step from ``from_version`` to ``from_version + 1`` of type ``name``
        (the current name, when the type was renamed)."""
        self._upcasters[(name, from_version)] = upcaster

    def deprecate(self, name: str) -> None:
        """Skip stored events of type ``name`` on read (decode returns None)."""
        self._deprecated.add(name)

    def event_class(self, name: str) -> type[AnyEvent] | None:
        """The class registered for a (current or old) type name."""
        return self._classes.get(self._renamed.get(name, name))

    def encode(
        self, event: AnyEvent, *, metadata: bytes = b"{}", event_id: str | None = None
    ) -> NewEvent:
        """The NewEvent to append for ``event``, carrying its tags (``event.event_tags()``)
        and naming its personal fields (which the engine encrypts)."""
        writer = self._writers.get(type(event))
        if writer is None:
            writer = self._writer(type(event))
        name, version, encode, personal = writer
        data = encode(event)
        tags = event.event_tags()
        if personal:
            return NewEvent(
                name,
                data,
                version,
                metadata,
                new_uuid() if event_id is None else event_id,
                tags,
                _seals(event, personal),
            )
        if event_id is None:
            if tags:
                return NewEvent(name, data, version, metadata, tags=tags)
            return NewEvent(name, data, version, metadata)
        return NewEvent(name, data, version, metadata, event_id, tags)

    def _writer(self, cls: type[AnyEvent]) -> _Writer:
        name = type_name(cls)
        model = model_format(cls, name)
        encode = self._encode if model is None else model.encode
        writer = (name, cls.schema_version, encode, personal_fields(cls))
        self._writers[cls] = writer
        return writer

    def decode(self, recorded: RecordedEvent) -> AnyEvent | None:
        """The event object of a stored event, or None for a deprecated type.

        Raises UnknownEventType for a type with no class, EventDecodeError when the data does
        not fit the class even after upcasting.
        """
        current = self._current.get(recorded.type)
        if current is not None and current[0] == recorded.schema_version:
            try:
                event: AnyEvent = current[1](recorded.data)
                return event
            except msgspec.DecodeError as exc:  # malformed JSON, or a shape that does not fit
                raise EventDecodeError(recorded.type, recorded.schema_version, str(exc)) from None
        return self._decode_evolved(recorded)

    def _decode_evolved(self, recorded: RecordedEvent) -> AnyEvent | None:
        name = self._renamed.get(recorded.type, recorded.type)
        if recorded.type in self._deprecated or name in self._deprecated:
            return None
        cls = self._classes.get(name)
        if cls is None:
            raise UnknownEventType(recorded.type, recorded.schema_version, recorded.stream_id)
        version = recorded.schema_version
        try:
            data = msgspec.json.decode(recorded.data)
            if not isinstance(data, dict):
                raise EventDecodeError(recorded.type, version, "stored data is not a JSON object")
            while version < cls.schema_version:
                upcaster = self._upcasters.get((name, version))
                if upcaster is None:
                    raise EventDecodeError(
                        recorded.type, version, f"no upcaster from version {version} of {name!r}"
                    )
                try:
                    data = upcaster(data)
                except Exception as exc:  # user code: report which step broke, on what
                    raise EventDecodeError(
                        recorded.type,
                        version,
                        f"the upcaster from version {version} failed: {exc!r}",
                    ) from exc
                version += 1
            if version > cls.schema_version:
                raise EventDecodeError(
                    recorded.type,
                    version,
                    f"newer than the code's version {cls.schema_version} of {name!r}",
                )
            data["type"] = name
            event: AnyEvent = self._convert[name](data)
            return event
        except msgspec.DecodeError as exc:
            raise EventDecodeError(recorded.type, recorded.schema_version, str(exc)) from None
