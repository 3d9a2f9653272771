"""The JSON of every HTTP edge: money as JSON numbers, the way the seed shows it."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

MEDIA_TYPE = "application/json"

encode = msgspec.json.Encoder(decimal_format="number").encode
"""Encode to JSON bytes; Decimal becomes a JSON number (``1300.0``), never a string."""


def timestamp(unix_seconds: float) -> str:
    """A Unix time as ISO 8601 in UTC with microseconds and a ``Z``."""
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")
