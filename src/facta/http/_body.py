"""Decoding request bodies straight into a command type, strictly.

Litestar's default decodes JSON to Python objects first and converts them after (two passes,
lenient coercions). A DTO is Litestar's extension point for taking over the decoding of
``data`` while still documenting its type in OpenAPI. Here the framework-neutral
:class:`facta._edge.body.StrictBody` decodes the command in one msgspec pass, after the checks
msgspec does not make (JSON media type, nesting, duplicate keys, NUL, money as JSON numbers).
:class:`JsonRequest` applies the same checks to every other route that reads a JSON body.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Generator, Iterable
from typing import Any, ClassVar, cast

from litestar import Request
from litestar.dto import AbstractDTO
from litestar.dto.data_structures import DTOFieldDefinition
from litestar.exceptions import InternalServerException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.types import Empty
from litestar.typing import FieldDefinition

from facta._edge.body import StrictBody
from facta._edge.input import NO_NUL_PATTERN, check_json, require_json
from facta.http.errors import ApiError


class TypedBody(AbstractDTO[Any]):
    """A data DTO decoding JSON bytes into ``model_type`` (a Struct or a union of tagged
    Structs); make one per type with :func:`typed_body`."""

    body: ClassVar[StrictBody]

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        """Nothing to generate: the decoder does all the work."""

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Any:
        """The schema of the model type itself, saying what the edge refuses besides: no
        unknown fields (``additionalProperties: false``) and no NUL in a string."""
        schema = schema_creator.for_field_definition(
            FieldDefinition.from_annotation(cls.model_type)
        )
        for member in typing.get_args(cls.model_type) or (cls.model_type,):
            config = getattr(member, "__struct_config__", None)
            if config is None:
                continue
            component = schema_creator.schema_registry.get_schema_for_field_definition(
                FieldDefinition.from_annotation(member)
            )
            if config.forbid_unknown_fields:
                component.additional_properties = False
            for prop in (component.properties or {}).values():
                if (
                    isinstance(prop, Schema)
                    and prop.type == OpenAPIType.STRING
                    and not (prop.pattern or prop.const or prop.enum)
                ):
                    prop.pattern = NO_NUL_PATTERN
        return schema

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
        """The body as the model type; 415 unless it is sent as JSON, 422 with a message
        naming the field when it does not fit."""
        return self.body.decode(value, _content_type(self.asgi_connection.scope["headers"]))

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        """Form data is not a command."""
        raise ValidationException("send the command as a JSON body")


def typed_body(model_type: Any) -> type[TypedBody]:
    """A data DTO for ``model_type``."""
    return type(
        f"TypedBody[{getattr(model_type, '__name__', 'union')}]",
        (TypedBody,),
        {"model_type": model_type, "body": StrictBody(model_type)},
    )


def _content_type(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1")
    return None


class JsonRequest(Request[Any, Any, Any]):
    """The request class of a facta app (and of its command routes).

    ``json()`` (how Litestar reads a JSON ``data`` parameter) makes the same checks as the
    command routes before decoding. ``body()`` reads with one loop over the ASGI messages
    (usually one): Litestar's goes through an async generator, parses every header to find
    the content length and sets up a weak reference per chunk, ~8 µs of a command's ~140.
    The limit is the route's, as there; a body over it is refused once it is seen to be (the
    server reads no more than that of it). A client gone before its body was in is not a
    server error: nothing is logged.
    """

    async def json(self) -> Any:
        """The body decoded as JSON: 415 unless sent as JSON, 422 when it nests too deeply,
        repeats a key or holds NUL."""
        if self._json is Empty and self._connection_state.json is Empty:
            body = await self.body()
            if body:
                require_json(_content_type(self.scope["headers"]))
                check_json(body)
        return await super().json()

    async def body(self) -> bytes:
        """The whole body, read once."""
        if self._body is not Empty or self._connection_state.body is not Empty:
            return await super().body()
        if not self.is_connected:
            raise InternalServerException("stream consumed")
        limit = self.route_handler.resolve_request_max_body_size() or math.inf
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                # Nobody is left to answer (a slow client cut off, say): no 500, no log.
                raise ApiError(
                    400, "the client disconnected before its body was in", error="disconnected"
                )
            chunk = cast("bytes", message.get("body", b""))
            size += len(chunk)
            if size > limit:
                raise RequestEntityTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self.is_connected = False
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._body = self._connection_state.body = body
        return body


CommandRequest = JsonRequest
"""The request class of the command routes (the same as the app's)."""
