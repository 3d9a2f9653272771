"""The JSON encoder of the HTTP layer: money as JSON numbers, the way the seed shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Response

MEDIA_TYPE = "application/json"

encode = msgspec.json.Encoder(decimal_format="number").encode
"""Encode to JSON bytes; Decimal becomes a JSON number (``1300.0``), never a string."""


def timestamp(unix_seconds: float) -> str:
    """A Unix time as ISO 8601 in UTC with microseconds and a ``Z``."""
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")


def json_response(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """A response with ``body`` as encoded JSON.

    Typed Any so that a handler can keep the model it documents in its return annotation
    (``Response[AccountView]``, for OpenAPI) while sending bytes it encoded itself.
    """
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)
