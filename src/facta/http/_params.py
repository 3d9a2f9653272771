"""The query parameters of the Litestar routes as OpenAPI schemas; the parsers themselves are
framework-neutral (:mod:`facta._edge.params`)."""

from __future__ import annotations

from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema

from facta._edge.params import (
    MAX_SEQUENCE,
    MAX_VERSION,
    POSITION_PATTERN,
    TIME_PATTERN,
    etag,
    if_match_versions,
    parse_position,
    parse_time,
)

TIME_SCHEMAS = [
    Schema(type=OpenAPIType.STRING, pattern=TIME_PATTERN),
    Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
]
"""What :func:`parse_time` reads, as JSON Schemas: Unix seconds, or an RFC 3339 date-time."""

__all__ = [
    "MAX_SEQUENCE",
    "MAX_VERSION",
    "POSITION_PATTERN",
    "TIME_SCHEMAS",
    "etag",
    "if_match_versions",
    "parse_position",
    "parse_time",
]
