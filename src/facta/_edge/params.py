"""Parsing what clients put in headers and query strings: entity tags, times, positions.

Every parser raises ApiError(422) with a message naming the parameter, never anything else.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from facta._edge.errors import ApiError
from facta.store.base import Position

MAX_VERSION = 2**53
"""The largest version or limit a client may name: exact in every JSON parser, fits int64."""

MAX_SEQUENCE = 2**63 - 1

TIME_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,6})?$"
"""Unix seconds as :func:`parse_time` reads them (the other form is an RFC 3339 date-time)."""

POSITION_PATTERN = r"^[0-9]{1,18}(:[0-9]{1,18})?$"
"""A log position as ``str(Position)`` writes it (what the API documents; 19 digits pass too)."""

_EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp() - 86_400  # year 1, at any offset

_ENTITY_TAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*|\s*([0-9]+)\s*')


def etag(version: int) -> str:
    """The ``ETag`` of a resource at ``version``."""
    return f'"{version}"'


def if_match_versions(header: str) -> set[int] | None:
    """The versions an ``If-Match`` header accepts; None for ``*`` (any existing version).

    Tags that are not one of our versions can never match, so they add nothing: a header of
    only such tags accepts no version at all (the precondition fails).
    """
    if header.strip() == "*":
        return None
    versions = set()
    for part in header.split(","):
        match = _ENTITY_TAG.fullmatch(part)
        if match is None:
            continue
        text = match.group(1) if match.group(1) is not None else match.group(2)
        if text.isascii() and text.isdigit() and len(text) <= 16:
            versions.add(int(text))
    return versions


def parse_time(text: str, name: str = "at") -> float:
    """Unix seconds from ``text``: a number of seconds (from 1970 on) or an ISO 8601
    date-time (UTC if it has no offset; any year: before 1970 is before every event)."""
    earliest = 0.0
    try:
        seconds = float(text)
    except ValueError:
        earliest = _EARLIEST
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ApiError(
                422, f"{name} must be Unix seconds or an ISO 8601 date-time, not {text[:60]!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            seconds = moment.timestamp()
        except (OverflowError, OSError, ValueError):
            raise ApiError(422, f"{name} is out of range") from None
    if not math.isfinite(seconds) or not earliest <= seconds <= 2**40:
        raise ApiError(422, f"{name} must be a time between 1970 and year 36812")
    return seconds


def parse_position(text: str, name: str = "after") -> Position:
    """A log position as ``str(Position)`` writes it."""
    try:
        position = Position.parse(text)
    except ValueError:
        raise ApiError(
            422, f"{name} must be a log position such as '42', not {text[:60]!r}"
        ) from None
    if position.commit > MAX_SEQUENCE or position.sequence > MAX_SEQUENCE:
        raise ApiError(422, f"{name} is out of range")
    return position
