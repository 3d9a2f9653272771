"""pydantic v2 models as events, commands and states, beside msgspec structs.

Needs the ``pydantic`` extra (``pip install 'facta[pydantic]'``); ``import facta`` does not.

- :class:`PydanticEvent`: an event as a frozen pydantic model. It declares its schema
  evolution (``schema_version``, ``upcasters``, ``renamed_from``) and its tags (fields marked
  ``Annotated[str, Tag("course")]``, or an overridden :meth:`~PydanticEvent.event_tags`)
  exactly as a msgspec :class:`facta.Event` does, and is stored the same way:
  ``{"type": "ClassName", ...fields}``, with the field values as pydantic writes them in
  JSON (a ``Decimal`` as a string, say, which msgspec classes read too).
- :class:`PydanticCommand`: a command as a frozen pydantic model that refuses unknown fields.
- A state may be any pydantic model (no base class needed): snapshots store it as its JSON.

An aggregate or decision may mix these with msgspec classes, and one store may hold both.
A model may not have a field named ``type``: that key is the type tag in stored JSON.
The HTTP routes (:mod:`facta.http`) serve msgspec commands and events only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from facta._formats import Format
from facta.domain import Tag, Upcaster, accept_model_bases, check_evolution

__all__ = ["PydanticCommand", "PydanticEvent", "json_format"]


class PydanticEvent(BaseModel):
    """An immutable fact that happened, as a pydantic model, stored JSON-tagged by its class
    name in a ``"type"`` field (see :class:`facta.Event` for the class variables below).

    Its fields are validated when it is built, as any pydantic model's, and when it is read
    back from the store.
    """

    model_config = ConfigDict(frozen=True)

    schema_version: ClassVar[int] = 1
    upcasters: ClassVar[Mapping[int, Upcaster]] = {}
    renamed_from: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Checks the declared schema evolution, and that no field is named ``type``."""
        super().__pydantic_init_subclass__(**kwargs)
        check_evolution(cls)
        if "type" in cls.model_fields:
            raise TypeError(f"{cls.__name__}: a field named 'type' would clash with the type tag")

    def event_tags(self) -> tuple[str, ...]:
        """The tags this event carries when appended: ``prefix:value`` for each field marked
        with a :class:`facta.Tag` (a None value gives no tag). Override it for other tags;
        it must be pure."""
        fields = _tag_fields(type(self))
        if not fields:
            return ()
        tags = []
        for name, prefix in fields:
            value = getattr(self, name)
            if value is not None:
                tags.append(f"{prefix}:{value}")
        return tuple(tags)


class PydanticCommand(BaseModel):
    """An intention, as a frozen pydantic model that refuses unknown fields (a misspelt
    field is an error, never silently dropped)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


accept_model_bases(PydanticEvent, PydanticCommand)

_TAG_FIELDS: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def _tag_fields(cls: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """(field, prefix) for each field of ``cls`` marked with a Tag, found on first use."""
    found = _TAG_FIELDS.get(cls)
    if found is None:
        found = tuple(
            (name, marker.prefix)
            for name, info in cls.model_fields.items()
            for marker in info.metadata
            if isinstance(marker, Tag)
        )
        _TAG_FIELDS[cls] = found
    return found


def json_format(cls: type[BaseModel], tag: str | None = None) -> Format:
    """How facta stores instances of the model ``cls``: its pydantic JSON, with
    ``"type": tag`` first when ``tag`` is given (events; the key is dropped again on read).
    Decoding raises ``msgspec.ValidationError`` with pydantic's message when the JSON does
    not fit the model."""
    adapter: TypeAdapter[Any] = TypeAdapter(cls)
    dump, validate_json = adapter.dump_json, adapter.validate_json

    def decode(data: bytes) -> Any:
        try:
            return validate_json(data)
        except ValidationError as exc:
            raise msgspec.ValidationError(str(exc)) from None

    if tag is None:
        return Format(dump, decode)

    prefix = b'{"type":' + msgspec.json.encode(tag)

    def encode(value: Any) -> bytes:
        body: bytes = dump(value)
        return prefix + b"," + body[1:] if len(body) > 2 else prefix + b"}"

    if cls.model_config.get("extra", "ignore") == "ignore":
        return Format(encode, decode)  # pydantic skips the "type" key itself

    def decode_untagged(data: bytes) -> Any:
        # A model that forbids (or keeps) unknown keys must not see the tag.
        try:
            fields = msgspec.json.decode(data)
            if isinstance(fields, dict):
                fields.pop("type", None)
            return adapter.validate_python(fields)
        except ValidationError as exc:
            raise msgspec.ValidationError(str(exc)) from None

    return Format(encode, decode_untagged)
