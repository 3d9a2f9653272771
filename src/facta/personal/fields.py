"""Which fields of an event class hold personal data, found once per class by the codec.

A field is personal when its annotation carries a :class:`~facta.domain.Personal` marker or
the class lists it in ``personal_data``. What the codec keeps for it: the attribute, its
name in the JSON object, the attribute naming its subject (None: the stream), and the JSON
of its redacted value, checked against the field's type here, so that a forgotten subject's
events always decode.
"""

from __future__ import annotations

import decimal
import types
import typing
from typing import Any, NamedTuple

import msgspec

from facta.domain import REDACTED, UNSET, Personal

# As the codec writes event data (money as JSON numbers).
_encode = msgspec.json.Encoder(decimal_format="number").encode


class PersonalField(NamedTuple):
    """One personal field of an event class, as the codec seals it."""

    attribute: str
    field: str
    subject: str | None
    redacted: bytes


_DEFAULTS: dict[Any, Any] = {
    str: REDACTED,
    int: 0,
    float: 0.0,
    bool: False,
    bytes: b"",
    decimal.Decimal: decimal.Decimal(0),
}
_EMPTY: dict[Any, Any] = {list: [], tuple: [], set: [], frozenset: [], dict: {}}


def redacted_default(annotation: Any) -> Any:
    """The redacted value of a field of type ``annotation``; UNSET when it has none."""
    bare = annotation
    while typing.get_origin(bare) is typing.Annotated:
        bare = typing.get_args(bare)[0]
    origin = typing.get_origin(bare)
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(bare):
        return None
    if bare in _DEFAULTS:
        return _DEFAULTS[bare]
    if (origin or bare) in _EMPTY:
        return _EMPTY[origin or bare]
    return UNSET


def personal_fields(cls: type[Any]) -> tuple[PersonalField, ...]:
    """The personal fields of event class ``cls`` (empty for most). Raises TypeError for a
    marker on a class that is not a msgspec struct, a subject that is not a field, or a
    redacted value (given or default) that the field's type refuses."""
    declared: dict[str, Personal] = dict(getattr(cls, "personal_data", {}) or {})
    if not isinstance(cls, type) or not issubclass(cls, msgspec.Struct):
        # Refused, never ignored: a field declared personal must not be stored in clear.
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception:  # names only the model's library resolves: nothing marked here
            hints = {}
        marked = any(
            isinstance(marker, Personal)
            for hint in hints.values()
            for marker in getattr(hint, "__metadata__", ())
        )
        if declared or marked:
            raise TypeError(f"{cls.__name__}: only msgspec events can have personal fields")
        return ()
    hints = typing.get_type_hints(cls, include_extras=True)
    for name in cls.__struct_fields__:
        for marker in getattr(hints.get(name), "__metadata__", ()):
            if isinstance(marker, Personal):
                declared[name] = marker
    if not declared:
        return ()
    infos = {f.name: f for f in msgspec.structs.fields(cls)}
    found = []
    for name, marker in declared.items():
        info = infos.get(name)
        if info is None:
            raise TypeError(f"{cls.__name__}.personal_data names {name!r}, not one of its fields")
        if marker.subject is not None and marker.subject not in infos:
            raise TypeError(
                f"{cls.__name__}.{name}: its subject {marker.subject!r} is not a field of it"
            )
        if marker.subject == name:
            raise TypeError(f"{cls.__name__}.{name}: a personal field cannot be its own subject")
        redacted = marker.redacted
        if redacted is UNSET:
            redacted = redacted_default(hints[name])
        if redacted is UNSET:
            raise TypeError(
                f"{cls.__name__}.{name}: no redacted value for its type; give one with"
                " Personal(redacted=...)"
            )
        encoded = _encode(redacted)
        try:
            msgspec.json.decode(encoded, type=hints[name])
        except msgspec.ValidationError as exc:
            raise TypeError(
                f"{cls.__name__}.{name}: its redacted value {redacted!r} does not fit its type"
                f" ({exc}); give one that does with Personal(redacted=...)"
            ) from None
        found.append(PersonalField(name, info.encode_name, marker.subject, encoded))
    return tuple(found)
