"""Fuzzing the parsers that see outside input: stored event data, stream ids, positions."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facta import Codec, FactaError, InvalidStreamId, Position, RecordedEvent
from facta.examples.bank.domain import Account
from facta.store.base import validate_stream_id

codec = Codec()
codec.register_aggregate(Account())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=10,
)


@given(
    kind=st.sampled_from(["AccountOpened", "MoneyDeposited", "MoneyWithdrawn", "Other", ""]),
    schema_version=st.integers(-3, 5),
    data=st.binary(max_size=200) | json_values.map(lambda v: repr(v).encode()),
)
def test_decoding_any_stored_bytes_raises_only_facta_errors(
    kind: str, schema_version: int, data: bytes
) -> None:
    record = RecordedEvent(
        "id", "account-1", 1, Position(0, 1), kind, schema_version, data, b"{}", 0.0
    )
    with contextlib.suppress(FactaError):
        codec.decode(record)


@given(st.text(max_size=400))
def test_stream_ids_are_either_valid_or_refused_clearly(text: str) -> None:
    try:
        assert validate_stream_id(text) == text
    except InvalidStreamId as error:
        assert "stream id" in str(error)  # noqa: PT017 (a property, not one case)
        assert not re.fullmatch(r"[A-Za-z0-9_.:@+=~-]{1,300}", text)


@given(st.text(max_size=60))
def test_positions_parse_or_raise_value_error(text: str) -> None:
    try:
        position = Position.parse(text)
    except ValueError as error:
        assert "not a log position" in str(error)  # noqa: PT017 (a property, not one case)
    else:
        assert Position.parse(str(position)) == position


@pytest.mark.parametrize("text", ["1" * 42, "٣", "1:٣", "²"])
def test_positions_refuse_oversized_and_non_ascii_digits(text: str) -> None:
    with pytest.raises(ValueError, match="not a log position"):
        Position.parse(text)
