"""Observability: OpenTelemetry spans and metrics, and JSON logs carrying the same ids.

facta depends on the OpenTelemetry *API* only: with no SDK configured, every span and metric
call is a cheap no-op. Install an SDK (``facta[otel]``), set a provider globally
(``opentelemetry-instrument``, or ``trace.set_tracer_provider``) or hand one to
:func:`instrument`, and commands, appends, loads, projection and relay batches show up as
spans of one trace per command; the trace context travels in each event's metadata under
``traceparent``.
"""

from facta.observability.logging import JsonFormatter, configure_logging, log_context
from facta.observability.metrics import METER_NAME
from facta.observability.tracing import TRACEPARENT, TRACER_NAME, instrument, tracing_on

__all__ = [
    "METER_NAME",
    "TRACEPARENT",
    "TRACER_NAME",
    "JsonFormatter",
    "configure_logging",
    "instrument",
    "log_context",
    "tracing_on",
]
