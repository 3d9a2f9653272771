"""Schemathesis hooks for tests/http/test_schemathesis.py (``SCHEMATHESIS_HOOKS``)."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis


@(
    schemathesis.hook("map_query")
    .apply_to(method="GET", path="/accounts")
    .apply_to(method="GET", path="/transfers")
)
def no_made_up_cursor(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop ``after``: a page cursor is the ``next`` of an earlier page, never made up."""
    if query:
        query.pop("after", None)
    return query


@schemathesis.hook("map_headers")
def a_new_idempotency_key_each_time(
    context: Any, headers: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A fresh ``Idempotency-Key`` per request: reusing one for a different request is a 422
    by design (tests/http/test_idempotency.py), and made-up keys repeat ("0", "{")."""
    if headers and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers
