"""The edge's body checks on their own: nesting, repeated keys, NUL, money as JSON numbers in
every shape a command may hold it."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from facta import Command
from facta._edge.input import MAX_DEPTH, check_json, is_json_media_type, numbers_only
from facta.http.errors import ApiError


class Line(msgspec.Struct):
    sku: str
    price: Decimal


class Order(Command, frozen=True):
    lines: list[Line]
    discount: Decimal | None = None
    fees: dict[str, Decimal] = msgspec.field(default_factory=dict)
    note: str = ""
    tip: Annotated[Decimal, msgspec.Meta(description="a tip")] = Decimal(0)


class Rename(Command, frozen=True):
    pass


class Paid(msgspec.Struct, tag=True):
    amount: Decimal


class Free(msgspec.Struct, tag=True):
    reason: str


class Settle(Command, frozen=True):
    how: Paid | Free
    label: int | Decimal | None = None


def refuses(model: object, body: bytes) -> str:
    decoder = numbers_only(model)
    assert decoder is not None
    msgspec.json.decode(body, type=model)  # the real decoder accepts it
    with pytest.raises(msgspec.ValidationError) as caught:
        decoder.decode(body)
    return str(caught.value)


def accepts(model: object, body: bytes) -> None:
    decoder = numbers_only(model)
    assert decoder is not None
    decoder.decode(body)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"type":"Order","lines":[{"sku":"a","price":"1"}]}', "$.lines[0].price"),
        (b'{"type":"Order","lines":[],"discount":"1"}', "$.discount"),
        (b'{"type":"Order","lines":[],"fees":{"x":1,"y":"2"}}', "$.fees[...]"),
        (b'{"type":"Order","lines":[],"tip":"3"}', "$.tip"),
    ],
)
def test_a_string_where_a_decimal_goes_is_refused_at_its_path(body: bytes, where: str) -> None:
    message = refuses(Order, body)
    assert "JSON number" in message
    assert where in message


def test_numbers_and_nulls_and_other_fields_pass() -> None:
    accepts(
        Order,
        b'{"type":"Order","lines":[{"sku":"1","price":1.10}],"discount":null,'
        b'"fees":{"x":1e999},"note":"12","tip":0}',
    )


def test_unions_are_checked_by_member() -> None:
    assert "$.how.amount" in refuses(
        Settle, b'{"type":"Settle","how":{"type":"Paid","amount":"5"}}'
    )
    accepts(Settle, b'{"type":"Settle","how":{"type":"Free","reason":"5"},"label":7}')
    assert "$.label" in refuses(
        Settle, b'{"type":"Settle","how":{"type":"Free","reason":"5"},"label":"7"}'
    )


def test_types_without_decimals_need_no_check() -> None:
    assert numbers_only(Rename) is None
    assert numbers_only(Free) is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"a":2}',
        b'{"a":{"b":1,"b":1}}',
        b'[{"a":1},{"x":{"a":1,"\\u0061":2}}]',
    ],
)
def test_repeated_keys_are_found_at_any_level(body: bytes) -> None:
    with pytest.raises(ApiError, match="repeats the key"):
        check_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}',
        b'{"a":"{\\"a\\":1,\\"a\\":2}","b":"[[[[","c":"}}}"}',
        b'{"a":"\\\\u0000"}',
        b'{"type": "Deposit"   ,   "amount" : 5}',
    ],
)
def test_valid_bodies_pass(body: bytes) -> None:
    check_json(body)


def test_nesting_is_bounded() -> None:
    check_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    with pytest.raises(ApiError, match="nests deeper"):
        check_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))


@given(
    st.recursive(
        st.none() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_any_json_without_nul_or_deep_nesting_passes(value: object) -> None:
    body = msgspec.json.encode(value)
    try:
        check_json(body)
    except ApiError as error:
        assert has_nul(value) or "nests deeper" in error.message  # noqa: PT017
    else:
        assert not has_nul(value)


@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.characters(exclude_characters="\x00"), max_size=4),
            st.integers() | st.text(alphabet=st.characters(exclude_characters="\x00")),
        ),
        max_size=6,
    ),
    st.sampled_from([b":", b" : ", b":  "]),
)
def test_flat_objects_are_refused_exactly_when_a_key_repeats(
    pairs: list[tuple[str, object]], colon: bytes
) -> None:
    """One object, its keys repeated or not, written with or without escapes and spaces:
    the short way for flat bodies with no escape and the full one agree."""
    encode = msgspec.json.encode
    body = b"{" + b",".join(encode(k) + colon + encode(v) for k, v in pairs) + b"}"
    repeated = len({k for k, _ in pairs}) < len(pairs)
    try:
        check_json(body)
    except ApiError as error:
        assert repeated, error.message  # noqa: PT017
        assert "repeats the key" in error.message  # noqa: PT017
    else:
        assert not repeated


def has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(has_nul(v) for v in value)


@pytest.mark.parametrize(
    ("media_type", "ok"),
    [
        ("application/json", True),
        ("application/problem+json", True),
        ("application/json;charset=utf8", True),
        ("application/json; charset=utf-16", False),
        ("text/json", False),
        ("", False),
    ],
)
def test_json_media_types(media_type: str, ok: bool) -> None:
    assert is_json_media_type(media_type) is ok
