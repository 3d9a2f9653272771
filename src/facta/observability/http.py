"""Tracing the HTTP edge: Litestar's OpenTelemetry middleware, on when facta traces.

The server span it opens for each request (named after the route template, ``POST
/accounts/{id}``, and continuing a ``traceparent`` header the client sent) is the parent of
the ``facta.execute`` span, and so of everything the command causes.
"""

from __future__ import annotations

import logging

from litestar.middleware.base import DefineMiddleware

from facta.observability.tracing import tracer_provider

log = logging.getLogger("facta.observability")


def tracing_middleware() -> list[DefineMiddleware]:
    """Litestar's OpenTelemetry middleware, as a list to splice into ``middleware=``: empty
    when no tracer provider is configured (no per-request cost then) or without
    ``facta[otel]`` (which brings the ASGI instrumentation it builds on)."""
    provider = tracer_provider()
    if provider is None:
        return []
    try:
        from litestar.plugins.opentelemetry import OpenTelemetryConfig
    except ImportError:  # the middleware needs opentelemetry-instrumentation-asgi
        log.info("HTTP requests are not traced: install facta[otel] for that")
        return []
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        exclude=["^/metrics$", "^/health$", "^/ready$"],
        exclude_spans=["receive", "send"],
    )
    return [config.middleware]
