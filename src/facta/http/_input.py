"""Kept for imports of ``facta.http._input``: the checks live in :mod:`facta._edge.input`."""

from facta._edge.input import (
    MAX_DEPTH,
    NO_NUL_PATTERN,
    check_json,
    is_json_media_type,
    numbers_only,
    require_json,
)

__all__ = [
    "MAX_DEPTH",
    "NO_NUL_PATTERN",
    "check_json",
    "is_json_media_type",
    "numbers_only",
    "require_json",
]
