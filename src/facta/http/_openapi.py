"""OpenAPI schemas for types Litestar documents differently from how facta sends them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition


class DecimalAsNumber(OpenAPISchemaPlugin):
    """Decimal is a JSON number on the wire (``1300.0``), not the string Litestar assumes."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        """Decimal and its subclasses."""
        return isinstance(value, type) and issubclass(value, Decimal)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        """A number: the edge refuses a string where a Decimal goes (facta._edge.input)."""
        return Schema(type=OpenAPIType.NUMBER, description="a decimal number")
