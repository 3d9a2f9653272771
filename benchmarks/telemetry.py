"""``FACTA_BENCH_OTEL=1``: run a benchmark with the OpenTelemetry SDK recording everything;
``FACTA_BENCH_OTEL=0.01``: with the SDK sampling that share of traces (``ParentBased``
``TraceIdRatioBased``, what production set-ups use to bound the cost), metrics still whole.

Spans go through a BatchSpanProcessor (as in production) to an exporter that drops them
(no collector runs here: the cost measured is facta's and the SDK's, not a network's);
metrics are aggregated by the SDK and read by an in-memory reader. Without the variable the
benchmark runs with the API alone, where every span and metric call is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class _DropSpans(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def configure_from_env() -> bool:
    """Install the SDK's providers if ``FACTA_BENCH_OTEL`` is set; returns whether it did."""
    setting = os.environ.get("FACTA_BENCH_OTEL")
    if not setting:
        return False
    ratio = float(setting)
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    sampler = ALWAYS_ON if ratio >= 1 else ParentBased(TraceIdRatioBased(ratio))
    tracer_provider = TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(BatchSpanProcessor(_DropSpans()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return True
