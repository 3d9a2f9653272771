"""Assemble a Litestar app for a facta service: aggregates, the event feed, operations routes,
OpenAPI docs, metrics and the error mapping."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.types import ControllerRouterHandler

from facta.http._body import JsonRequest
from facta.http._openapi import DecimalAsNumber
from facta.http.auth import ApiKeys
from facta.http.errors import EXCEPTION_HANDLERS
from facta.http.feed import feed_routes
from facta.http.health import health_routes
from facta.http.metrics import MetricsController, prometheus_config
from facta.http.resource import AggregateResource, aggregate_routes
from facta.http.runtime import Runtime
from facta.observability.http import tracing_middleware
from facta.observability.prometheus import bridge

MAX_BODY_SIZE = 64 * 1024
"""Request bodies above this many bytes are refused with 413: commands are small."""

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]


def create_app(
    runtime: Runtime,
    resources: Sequence[AggregateResource[Any]],
    *,
    route_handlers: Sequence[ControllerRouterHandler] = (),
    lifespans: Sequence[Lifespan] = (),
    title: str = "facta service",
    version: str = "0.1.0",
    description: str = "",
    max_body_size: int = MAX_BODY_SIZE,
    metrics: bool = True,
    api_keys: ApiKeys | None = None,
) -> Litestar:
    """A Litestar app serving ``resources`` plus the feed, health, readiness, metrics and docs.

    The runtime's Application is opened at startup, before ``lifespans`` are entered (they
    may use it, e.g. to run projections), and closed after them. Interactive API docs are at
    ``/docs``, the OpenAPI document at ``/docs/openapi.json``. With ``api_keys``, every
    request but the health probes must present one of them (see facta.http.auth).
    """

    @contextlib.asynccontextmanager
    async def open_and_close(app: Litestar) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    handlers: list[ControllerRouterHandler] = []
    for resource in resources:
        handlers.extend(aggregate_routes(resource, runtime))
    handlers.extend(route_handlers)
    handlers.extend(feed_routes(runtime))
    handlers.extend(health_routes(runtime))
    middleware = tracing_middleware()  # outermost: the request's span covers all the rest
    if api_keys is not None:
        middleware.append(DefineMiddleware(api_keys.middleware))  # before any other work
    if metrics:
        handlers.append(MetricsController)
        middleware.append(prometheus_config().middleware)
        bridge()  # facta's OpenTelemetry metrics on the same /metrics page
    return Litestar(
        route_handlers=handlers,
        lifespan=[open_and_close, *lifespans],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=middleware,
        request_max_body_size=max_body_size,
        request_class=JsonRequest,  # the edge's checks on every JSON body
        plugins=[DecimalAsNumber()],
        openapi_config=OpenAPIConfig(
            title=title,
            version=version,
            description=description or None,
            path="/docs",
            render_plugins=[
                SwaggerRenderPlugin(path="/"),
                ScalarRenderPlugin(path="/scalar"),
                JsonRenderPlugin(path="/openapi.json"),
            ],
        ),
    )
