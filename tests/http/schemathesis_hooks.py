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
    """Drop ``after`` and ``position``: a page cursor is the ``next`` of an earlier page, and
    a position the ``Facta-Position`` of a command's answer, never made up (one past the end
    of the log is refused, 422)."""
    if query:
        query.pop("after", None)
        query.pop("position", None)
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
