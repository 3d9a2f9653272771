"""Liveness and readiness: ``GET /health`` (the process answers) and ``GET /ready`` (it can
reach its event store, within a short timeout)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from facta.http._json import encode, json_response
from facta.http.errors import UNAVAILABLE, documented_errors, error_response
from facta.http.runtime import Runtime

READY_TIMEOUT = 2.0

_OK = b'{"status":"ok"}'


class Health(msgspec.Struct):
    """The process is up."""

    status: str


class Readiness(msgspec.Struct):
    """The store answered; ``head`` is the position of the last event in the log."""

    status: str
    head: str


def health_routes(runtime: Runtime) -> list[HTTPRouteHandler]:
    """The handlers of ``GET /health`` and ``GET /ready``."""

    @get("/health", summary="Liveness: the process answers", tags=["operations"])
    async def health() -> Response[Health]:
        return json_response(_OK)  # type: ignore[no-any-return]

    @get(
        "/ready",
        summary="Readiness: the event store answers",
        tags=["operations"],
        responses=documented_errors(503),
    )
    async def ready() -> Response[Readiness]:
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                head = await runtime.application.store.head()
        except UNAVAILABLE:
            unavailable: Any = error_response(
                503, "the event store is unavailable", headers={"Retry-After": "1"}
            )
            return unavailable  # type: ignore[no-any-return]
        return json_response(encode(Readiness("ready", str(head))))  # type: ignore[no-any-return]

    return [health, ready]
