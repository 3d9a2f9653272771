"""OpenAPI schemas of msgspec types for FastAPI routes, which document pydantic models only.

A route's schemas are msgspec's JSON Schema with its ``$defs`` inlined (an operation cannot
add components), Decimal as a JSON number (the edge refuses money sent as a string), and no
discriminator mapping (it would point at the inlined definitions; each member of a command
union still names its ``type`` as a constant).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from facta._edge.errors import DESCRIPTIONS, ErrorBody

_SNAKE = re.compile(r"_([a-z])")
_MAX_DEPTH = 32


def schema(model: Any) -> dict[str, Any]:
    """The JSON Schema of ``model`` (a Struct, a union of them, a list of them) as one
    self-contained object."""
    document = msgspec.json.schema(model)
    definitions = document.pop("$defs", {})
    inlined: dict[str, Any] = _inline(document, definitions, 0)
    return inlined


def _inline(node: Any, definitions: dict[str, Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:  # a recursive type: left open below this depth
        return {}
    if isinstance(node, list):
        return [_inline(item, definitions, depth) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        return _inline(definitions[reference.removeprefix("#/$defs/")], definitions, depth + 1)
    if node.get("type") == "string" and node.get("format") == "decimal":
        number: dict[str, Any] = {"type": "number", "description": "a decimal number"}
        for key, value in (node.get("extra") or {}).items():
            number[_SNAKE.sub(lambda m: m.group(1).upper(), key)] = value
        return number
    return {
        key: _inline(value, definitions, depth)
        for key, value in node.items()
        if key != "discriminator"
    }


def json_content(model: Any, description: str) -> dict[str, Any]:
    """An OpenAPI response of ``model`` as JSON."""
    return {"description": description, "content": {"application/json": {"schema": schema(model)}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route may give, each with facta's error body."""
    return {status: json_content(ErrorBody, DESCRIPTIONS[status]) for status in statuses}
