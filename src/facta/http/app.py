"""Assemble a Litestar app for a facta service: aggregates, the event feed, operations routes,
OpenAPI docs, metrics, CORS and the error mapping."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from litestar import Litestar, Response, route
from litestar.config.cors import CORSConfig
from litestar.datastructures import CacheControlHeader
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Operation
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # (no py.typed)

from facta._edge.body import MAX_BODY_SIZE
from facta._edge.runtime import Runtime
from facta.http._body import JsonRequest
from facta.http._json import JsonResponse
from facta.http._openapi import DecimalAsNumber
from facta.http.auth import ApiKeys
from facta.http.errors import EXCEPTION_HANDLERS, ErrorsAsSent
from facta.http.feed import feed_routes
from facta.http.health import health_routes
from facta.http.metrics import MetricsController, prometheus_config
from facta.http.resource import AggregateResource, aggregate_routes
from facta.http.status import ProjectionCatalog, status_routes
from facta.observability.http import tracing_middleware
from facta.observability.prometheus import bridge

DOCS_ASSETS = "/docs/assets"
"""Where Swagger UI's scripts and styles are served from, out of the swagger-ui-bundle package:
the docs page needs no network beyond the service."""

EXPOSED_HEADERS = ("ETag", "Facta-Position", "Link", "Retry-After")
"""Answer headers a cross-origin page may read (CORS exposes only a few simple ones unasked)."""

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
    cors_origins: Sequence[str] = (),
) -> Litestar:
    """A Litestar app serving ``resources`` plus the feed, health, readiness, metrics and docs.

    The runtime's Application is opened at startup, before ``lifespans`` are entered (they
    may use it, e.g. to run projections), and closed after them. Interactive API docs are at
    ``/docs`` (Swagger UI, served with its assets: no CDN), the OpenAPI document at
    ``/docs/openapi.json``. With ``api_keys``, every request but the health probes must
    present one of them (see facta.http.auth).

    ``cors_origins``: the origins whose pages may call the API and follow ``/events/live``
    from a browser (``["https://dashboard.example"]``, or ``["*"]`` for any); CORS is off
    when empty, the default. Raises ValueError for an origin that is not
    ``scheme://host[:port]``, which a browser would never send and so would never match.
    """
    cors = _cors_config(cors_origins) if cors_origins else None

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
    catalog = ProjectionCatalog(runtime)
    handlers.extend(health_routes(runtime, catalog))
    handlers.extend(status_routes(catalog))
    for handler in handlers:  # the application's own routes document errors as sent, too
        if isinstance(handler, HTTPRouteHandler) and handler.operation_class is Operation:
            handler.operation_class = ErrorsAsSent
    # First, so that Litestar finds OPTIONS handled and makes none of its own.
    handlers[:0] = _options_routes(handlers)
    handlers.append(
        create_static_files_router(
            DOCS_ASSETS,
            directories=[Path(str(swagger_ui_path))],
            include_in_schema=False,
            cache_control=CacheControlHeader(max_age=3600),
        )
    )
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
        response_class=JsonResponse,
        cors_config=cors,
        openapi_config=OpenAPIConfig(
            title=title,
            version=version,
            description=description or None,
            path="/docs",
            render_plugins=[
                _swagger_ui(),
                JsonRenderPlugin(path="/openapi.json"),
            ],
        ),
    )


def _swagger_ui() -> SwaggerRenderPlugin:
    # Every asset from DOCS_ASSETS: Litestar's defaults load them from a CDN, a blank page
    # without internet. (Scalar is not offered: no Python package ships its scripts alone.)
    favicon = f"{DOCS_ASSETS}/favicon-32x32.png"
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{favicon}'>",
    )


def parse_cors_origins(text: str) -> list[str]:
    """The origins in ``text``, separated by commas (an environment variable, an option).

    Raises ValueError for one that is not ``*`` or ``scheme://host[:port]``: a browser sends
    no path and no trailing slash, so such an origin would silently never match.
    """
    origins = [origin.strip() for origin in text.split(",") if origin.strip()]
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or origin != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ValueError(
                f"CORS origin {origin[:100]!r} is not * or scheme://host[:port]"
                " (no path, no trailing slash)"
            )
    return origins


def _cors_config(origins: Sequence[str]) -> CORSConfig:
    # Any request header (If-Match, Idempotency-Key, Authorization, Last-Event-ID); no
    # cookies, since API keys travel in headers.
    return CORSConfig(
        allow_origins=parse_cors_origins(",".join(origins)),
        allow_headers=["*"],
        expose_headers=list(EXPOSED_HEADERS),
    )


def _options_routes(handlers: Iterable[ControllerRouterHandler]) -> list[HTTPRouteHandler]:
    """An OPTIONS handler for every path of ``handlers``, whose ``Allow`` lists every method
    served there.

    Litestar makes one when the first handler of a path is registered and keeps it when more
    are added, so it goes on naming the first one's methods only (``OPTIONS, POST`` on a path
    that also has GET).
    """
    methods: dict[str, set[str]] = defaultdict(set)
    for handler in handlers:
        if isinstance(handler, HTTPRouteHandler):
            for path in handler.paths:
                methods[path] |= handler.http_methods
    return [
        _options_route(path, ", ".join(sorted(verbs | {"OPTIONS"})))
        for path, verbs in methods.items()
        if "OPTIONS" not in verbs
    ]


def _options_route(path: str, allow: str) -> HTTPRouteHandler:
    def options() -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": allow})

    return route(
        path, http_method=HttpMethod.OPTIONS, include_in_schema=False, sync_to_thread=False
    )(options)
