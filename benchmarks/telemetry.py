"""The cost of facta's OpenTelemetry instrumentation, and the switch the benchmark worker reads.

``python -m benchmarks.telemetry [--runs 3] [--backends memory,sqlite]`` runs the
``1-sequential`` workload (20,000 deposits) in fresh processes without an SDK, with the SDK
sampling 1% of traces, and with it recording every trace, and prints the CPU time per command
(``time.process_time()`` around the commands: wall-clock rates on a shared machine swing too
much to compare) as the median of the runs, with the raw runs. Then it prints the SDK's own
floor: what the calls facta cannot avoid per command cost the SDK alone, warm, in a loop
(see :func:`sdk_floor`).

``FACTA_BENCH_OTEL=1``: run a benchmark with the OpenTelemetry SDK recording everything;
``FACTA_BENCH_OTEL=0.01``: with the SDK sampling that share of traces (``ParentBased``
``TraceIdRatioBased``, what production set-ups use to bound the cost), metrics still whole.

Spans go through a BatchSpanProcessor (as in production) to an exporter that drops them
(no collector runs here: the cost measured is facta's and the SDK's, not a network's);
metrics are aggregated by the SDK and read by an in-memory reader. Without the variable the
benchmark runs with the API alone, where every span and metric call is a no-op.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Sequence
from typing import Any

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


SETTINGS = {"no SDK": "", "SDK, 1% sampled": "0.01", "SDK, every trace": "1"}


def sdk_floor(repeat: int = 200_000) -> dict[str, float]:
    """µs per call of the SDK work one command brings with 1% of traces sampled, the best
    of five loops of ``repeat``: starting its root span (which the sampler then drops) and
    making it current, and recording its append's latency. facta makes no other SDK call
    for such a command; in a real command, between two appends, each costs more (its code
    is no longer in the processor's caches)."""
    import timeit

    from opentelemetry import context, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    tracer = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01))).get_tracer("floor")
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("floor")
    histogram = meter.create_histogram("floor", unit="s")
    attributes = {"facta.aggregate": "account", "facta.stream": "account-a1"}

    def root_span() -> None:
        span = tracer.start_span("facta.execute", attributes=attributes)
        context.detach(context.attach(trace.set_span_in_context(span)))
        span.end()

    def best(call: Any) -> float:
        return min(timeit.repeat(call, number=repeat, repeat=5)) / repeat * 1e6

    return {
        "root span, dropped by the sampler": best(root_span),
        "histogram record": best(lambda: histogram.record(0.0003)),
    }


def main() -> None:
    from benchmarks.run import run_one

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="memory,sqlite")
    args = parser.parse_args()
    print(f"{'backend':8} {'setting':18} {'median us/command':>18}  runs")
    for backend in args.backends.split(","):
        for label, setting in SETTINGS.items():
            os.environ["FACTA_BENCH_OTEL"] = setting
            runs = []
            for _ in range(args.runs):
                result = run_one("facta", backend, "1-sequential", "full")
                if "error" in result:
                    raise SystemExit(f"{backend} {label}: {result['error']}")
                runs.append(result["extra"]["cpu_us_per_command"])
            shown = " / ".join(f"{r:.1f}" for r in runs)
            print(f"{backend:8} {label:18} {statistics.median(runs):18.1f}  {shown}", flush=True)
    floor = sdk_floor()
    print("\nthe SDK alone, per command with 1% sampled (warm, best of five loops):")
    for call, micros in floor.items():
        print(f"  {call:36} {micros:5.1f} us")
    print(f"  {'together':36} {sum(floor.values()):5.1f} us")


if __name__ == "__main__":
    main()
