"""Documents: the keyed read-model records a projection writes and queries read.

A projection declares a document type (a msgspec Struct) and which of its fields are indexed.
Indexed fields become columns of the projection's table, so filters, ordering and keyset
pagination run in the database; the whole document is stored as JSON next to them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

D = TypeVar("D", bound=msgspec.Struct)

INDEX_TYPES: dict[Any, str] = {
    str: "text",
    int: "integer",
    float: "real",
    bool: "boolean",
    Decimal: "numeric",
}
"""Python types an indexed field may have, and the kind of column each becomes."""

OPERATORS = frozenset({"=", "!=", "<", "<=", ">", ">=", "in"})
"""Comparison operators a filter may use."""

MAX_LIMIT = 1000
"""The largest page a query returns."""


class Condition(NamedTuple):
    """One filter: ``field`` (an indexed field or ``"key"``) ``op`` ``value``."""

    field: str
    op: str
    value: Any


Filters = Mapping[str, Any] | Sequence[tuple[str, str, Any]]
"""Filters as a mapping (each an equality) or a sequence of ``(field, op, value)``."""


class Page(msgspec.Struct, Generic[D], frozen=True):
    """One page of a query: the documents, and the cursor of the next page (None: last)."""

    items: list[D]
    next: str | None = None


class DocumentSpec(Generic[D]):
    """A document type with its indexed fields; encodes, decodes and checks queries.

    Raises TypeError when an indexed field is missing or has a type that cannot be a column
    (allowed: str, int, float, bool, Decimal; not optional).
    """

    def __init__(self, document: type[D], indexes: Sequence[str] = ()) -> None:
        self.document = document
        fields = {f.name: f.type for f in msgspec.structs.fields(document)}
        self.indexes: tuple[str, ...] = tuple(indexes)
        self.kinds: dict[str, str] = {"key": "text"}
        self.types: dict[str, Any] = {"key": str}
        for name in self.indexes:
            if name == "key" or name not in fields:
                raise TypeError(f"{document.__name__} has no field {name!r} to index")
            kind = INDEX_TYPES.get(fields[name])
            if kind is None:
                raise TypeError(
                    f"indexed field {document.__name__}.{name} must be str, int, float, bool or"
                    f" Decimal, not {fields[name]!r}"
                )
            self.kinds[name] = kind
            self.types[name] = fields[name]
        self.encode = msgspec.json.Encoder(decimal_format="number").encode
        self.decode = msgspec.json.Decoder(document).decode
        self._getters = self.indexes

    def row(self, key: str, document: D) -> tuple[Any, ...]:
        """``(key, json, *indexed values)`` of a document, as stored."""
        return (key, self.encode(document), *[getattr(document, f) for f in self._getters])

    def conditions(self, filters: Filters | None) -> list[Condition]:
        """Check ``filters`` against the indexes and convert their values to the field types.

        Raises ValueError naming the field, operator or value that does not fit.
        """
        if not filters:
            return []
        raw = (
            [(name, "=", value) for name, value in filters.items()]
            if isinstance(filters, Mapping)
            else list(filters)
        )
        checked = []
        for item in raw:
            if not isinstance(item, tuple | list) or len(item) != 3:
                raise ValueError(f"a filter is (field, op, value), not {item!r}")
            field, op, value = item
            self.field(field)
            if op not in OPERATORS:
                raise ValueError(f"unknown filter operator {op!r}: use one of {sorted(OPERATORS)}")
            if op == "in":
                if not isinstance(value, list | tuple | set | frozenset):
                    raise ValueError(f"filter {field} in needs a list of values, not {value!r}")
                value = [self._convert(field, v) for v in value]
            else:
                value = self._convert(field, value)
            checked.append(Condition(field, op, value))
        return checked

    def field(self, name: str) -> str:
        """``name`` if it is ``"key"`` or an indexed field; raises ValueError otherwise."""
        if name not in self.kinds:
            raise ValueError(
                f"{name!r} is not an indexed field of {self.document.__name__}"
                f" (indexed: {', '.join(self.kinds)})"
            )
        return name

    def _convert(self, field: str, value: Any, *, strict: bool = True) -> Any:
        kind = self.types[field]
        if kind is float and isinstance(value, int | Decimal) and not isinstance(value, bool):
            return float(value)
        if kind is Decimal and isinstance(value, int | str) and not isinstance(value, bool):
            value = Decimal(value) if isinstance(value, int) else value
        try:
            return msgspec.convert(value, kind, strict=strict and kind is not Decimal)
        except msgspec.ValidationError:
            raise ValueError(
                f"filter value {value!r} does not fit field {field!r} ({kind.__name__})"
            ) from None


def check_limit(limit: int) -> int:
    """``limit`` if it is 1 to MAX_LIMIT; raises ValueError otherwise."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


_CURSOR_ENCODER = msgspec.json.Encoder(decimal_format="string")


def encode_cursor(value: Any, key: str) -> str:
    """An opaque cursor for keyset pagination: the last row's ordering value and key."""
    raw = _CURSOR_ENCODER.encode([value, key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(spec: DocumentSpec[Any], order_by: str, cursor: str) -> tuple[Any, str]:
    """The ``(value, key)`` a cursor holds; raises ValueError for a cursor this query did
    not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, key = msgspec.json.decode(raw, type=tuple[Any, str])
        return spec._convert(order_by, value, strict=False), key
    except (binascii.Error, msgspec.DecodeError, msgspec.ValidationError, ValueError):
        raise ValueError(f"invalid page cursor {cursor[:60]!r}") from None
