"""Serving facta's OpenTelemetry metrics as Prometheus text, beside prometheus-client's.

The HTTP service answers ``/metrics`` from prometheus-client's registry (its request
metrics live there). Rather than run two exposition mechanisms, :func:`bridge` registers an
OpenTelemetry ``PrometheusMetricReader`` in that same registry, so the framework's metrics
(recorded through the vendor-neutral OpenTelemetry API, also exportable over OTLP) appear on
the same page. Needs ``facta[otel]`` (the SDK and the Prometheus exporter).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import metrics

log = logging.getLogger("facta.observability")

_bridged: Any = None


def bridge(registry: Any = None) -> bool:
    """Export facta's metrics into prometheus-client's ``registry`` (default: the global one).

    Installs a global MeterProvider with a Prometheus reader, once per process, unless a
    MeterProvider was set globally already (its own exporters are then in charge). Returns
    whether facta's metrics will be on ``/metrics``; without ``facta[otel]`` says so in the
    log and returns False.
    """
    global _bridged
    if _bridged is not None:
        return True
    current = metrics.get_meter_provider()
    # The API's placeholder until one is set (a private class, hence by name).
    if type(current).__name__ not in ("_ProxyMeterProvider", "NoOpMeterProvider"):
        return False
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    except ImportError:
        log.info("facta's own metrics are not exported: install facta[otel] for them")
        return False
    options = {} if registry is None else {"registry": registry}
    reader = PrometheusMetricReader(disable_target_info=True, **options)
    # The text this reader serves carries no exemplars: keeping them would only cost each
    # histogram record a look at the current span.
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
    metrics.set_meter_provider(provider)
    _bridged = provider
    return True
