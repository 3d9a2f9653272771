"""Decoding a request body straight into a command type, strictly, in one msgspec pass after
the checks msgspec does not make (:mod:`facta._edge.input`): JSON media type, an empty body,
nesting, duplicate keys, NUL, and money as JSON numbers."""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from facta._edge.errors import ApiError
from facta._edge.input import check_json, numbers_only, require_json

MAX_BODY_SIZE = 64 * 1024
"""Request bodies above this many bytes are refused with 413: commands are small."""


class StrictBody:
    """Decodes JSON bytes into ``model_type`` (a Struct or a union of tagged Structs)."""

    def __init__(self, model_type: Any) -> None:
        self.model_type = model_type
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(model_type)
        self.numbers: dict[type[Any], msgspec.json.Decoder[Any]] = {}
        for member in typing.get_args(model_type) or (model_type,):
            checker = numbers_only(member)
            if checker is not None:
                self.numbers[member] = checker

    def decode(self, body: bytes, content_type: str | None) -> Any:
        """``body`` as the model type. Raises ApiError: 415 unless ``content_type`` is JSON,
        422 with a message naming the field when the body does not fit."""
        require_json(content_type)
        if not body.strip():
            raise ApiError(422, "the request body is empty: send a JSON object")
        check_json(body)
        try:
            decoded = self.decoder.decode(body)
            numbers = self.numbers.get(type(decoded))
            if numbers is not None:
                numbers.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ApiError(422, f"invalid request body: {exc}") from None
        return decoded
