"""Decoding request bodies straight into a command type, in one strict msgspec pass.

Litestar's default decodes JSON to Python objects first and converts them after (two passes,
lenient coercions, and a RecursionError - a 500 - on deeply nested input). A DTO is
Litestar's extension point for taking over the decoding of ``data`` while still documenting
its type in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

import msgspec
from litestar.dto import AbstractDTO
from litestar.dto.data_structures import DTOFieldDefinition
from litestar.exceptions import ValidationException
from litestar.typing import FieldDefinition

from facta.http.errors import ApiError


class TypedBody(AbstractDTO[Any]):
    """A data DTO decoding JSON bytes into ``model_type`` (a Struct or a union of tagged
    Structs); make one per type with :func:`typed_body`."""

    decoder: ClassVar[msgspec.json.Decoder[Any]]

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        """Nothing to generate: the decoder does all the work."""

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Any:
        """The schema of the model type itself."""
        return schema_creator.for_field_definition(FieldDefinition.from_annotation(cls.model_type))

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        """Unused: this DTO does not transform fields."""
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        """Unused: this DTO does not transform fields."""
        return False

    def decode_bytes(self, value: bytes) -> Any:
        """The body as the model type; 422 with msgspec's message when it does not fit."""
        if not value.strip():
            raise ApiError(422, "the request body is empty: send a JSON object")
        try:
            return self.decoder.decode(value)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ApiError(422, f"invalid request body: {exc}") from None

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        """Form data is not a command."""
        raise ValidationException("send the command as a JSON body")


def typed_body(model_type: Any) -> type[TypedBody]:
    """A data DTO for ``model_type``."""
    return type(
        f"TypedBody[{getattr(model_type, '__name__', 'union')}]",
        (TypedBody,),
        {"model_type": model_type, "decoder": msgspec.json.Decoder(model_type)},
    )
