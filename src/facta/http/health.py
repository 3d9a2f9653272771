"""Liveness and readiness: ``GET /health`` (the process answers) and ``GET /ready`` (it can
reach its event store, within a short timeout, and how its projections are).

A failed projection or policy, or a parked event, leaves readiness at 200 but makes its
``status`` ``degraded``, naming them and pointing to ``GET /status`` (see facta.http.status
for why it does not fail)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from facta._edge.runtime import Runtime
from facta.http._json import encode, json_response
from facta.http.errors import UNAVAILABLE, documented_errors, error_response
from facta.http.status import STATUS_PATH, ProjectionCatalog, trouble

READY_TIMEOUT = 2.0

_OK = b'{"status":"ok"}'


class Health(msgspec.Struct):
    """The process is up."""

    status: str


class Readiness(msgspec.Struct):
    """The store answered; ``head`` is the position of the last event in the log.

    ``status`` is ``ready``, or ``degraded`` while projections or policies are ``failed``
    (stopped at an event) or have ``parked`` events (counts by name); ``details`` is where
    to read more."""

    status: Literal["ready", "degraded"]
    head: str
    failed: list[str] = msgspec.field(default_factory=list)
    parked: dict[str, int] = msgspec.field(default_factory=dict)
    details: str = STATUS_PATH


def health_routes(
    runtime: Runtime, catalog: ProjectionCatalog | None = None
) -> list[HTTPRouteHandler]:
    """The handlers of ``GET /health`` and ``GET /ready`` (reporting the projections of
    ``catalog``, default: one of its own)."""
    watched = catalog or ProjectionCatalog(runtime)

    @get("/health", summary="Liveness: the process answers", tags=["operations"])
    async def health() -> Response[Health]:
        return json_response(_OK)  # type: ignore[no-any-return]

    @get(
        "/ready",
        summary="Readiness: the event store answers (degraded: projections need a look)",
        tags=["operations"],
        responses=documented_errors(503),
    )
    async def ready() -> Response[Readiness]:
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                head, statuses = await watched.head_and_statuses()
        except UNAVAILABLE:
            unavailable: Any = error_response(
                503, "the event store is unavailable", headers={"Retry-After": "1"}
            )
            return unavailable  # type: ignore[no-any-return]
        found = trouble(statuses)
        state: Literal["ready", "degraded"] = "degraded" if found.any else "ready"
        body = Readiness(state, str(head), found.failed, found.parked)
        return json_response(encode(body))  # type: ignore[no-any-return]

    return [health, ready]
