"""Schemathesis hooks for tests/http/test_schemathesis.py (``SCHEMATHESIS_HOOKS``)."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook("map_query").apply_to(method="GET", path="/accounts")
def no_made_up_cursor(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop ``after``: a page cursor is the ``next`` of an earlier page, never made up."""
    if query:
        query.pop("after", None)
    return query
