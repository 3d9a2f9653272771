"""Prometheus metrics: per-route request counts and latencies, plus what commands did.

Metrics live in prometheus_client's process-wide registry (created once, whatever the number
of apps built in the process) and are served at ``/metrics`` in the text exposition format.
"""

from __future__ import annotations

from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import Counter

COMMANDS = Counter(
    "facta_commands_total",
    "Commands received over HTTP, by aggregate, command type and outcome"
    " (accepted, rejected, conflict, precondition_failed, unavailable).",
    ["aggregate", "command", "outcome"],
)


def prometheus_config() -> PrometheusConfig:
    """Request metrics grouped by route template (``/accounts/{id}``), so that ids do not
    create one series each; the metrics endpoint itself is left out."""
    return PrometheusConfig(
        app_name="facta", prefix="facta_http", group_path=True, exclude=["^/metrics$"]
    )


class MetricsController(PrometheusController):
    """``GET /metrics``: the Prometheus text format."""

    path = "/metrics"
    include_in_schema = False
