"""OpenTelemetry metrics of the command side, the projections and the relay.

The instruments come from the global MeterProvider (or the one given to
:func:`facta.observability.instrument`); with none configured every call is a no-op. Served
as Prometheus text on the HTTP service's ``/metrics`` through
:func:`facta.observability.prometheus.bridge`, they are named:

- ``facta_application_commands_total{aggregate, outcome}``: executed commands by outcome
  (``accepted``, ``rejected``, ``conflict``, ``unavailable``, ``error``);
- ``facta_application_conflicts_total{aggregate}``: appends refused with WrongExpectedVersion;
- ``facta_application_retries_total{aggregate}``: retries those conflicts caused;
- ``facta_append_duration_seconds``: the latency of each append (a histogram);
- ``facta_projection_lag_events{projection}`` and ``facta_projection_lag_seconds{projection}``:
  how many events of the log a projection has still to handle, and how long ago the last
  event it handled was recorded (both sampled after each batch);
- ``facta_projection_stopped{projection}``: 1 while a projection or policy this process
  runs is stopped at a failing event (its own failure, or one it found in the catalog), 0
  once it runs;
- ``facta_projection_parked_total{projection}``: events a projection or policy parked in the
  dead-letter table in this process;
- ``facta_relay_lag_events{relay}`` and ``facta_relay_lag_seconds{relay}``: the same for a
  relay.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation
from opentelemetry.metrics import _internal as _api

if TYPE_CHECKING:
    from facta.store.base import Position, RecordedEvent

METER_NAME = "facta"
"""The instrumentation scope of every facta metric."""

# Bucket bounds for append latency: from an in-memory append (~10 µs) to a slow fsync.
_APPEND_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0
)  # fmt: skip


class _Counts:
    """Command counts kept by facta and read by the SDK when it collects (observable
    counters): counting a command is then a dict update, where an SDK counter's ``add``
    costs about 10 µs (attribute hashing, locks, one aggregation per reader)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], int] = {}

    def add(self, amount: int, *labels: str) -> None:
        values = self.values
        values[labels] = values.get(labels, 0) + amount


class _Latencies:
    """Append latencies on their way into the histogram, recorded in runs.

    Recording one value costs the SDK about 4 µs while its code is in the processor's caches
    and four to five times that between two appends, which evict it (measured: ~20 µs per
    command on SQLite). Values wait here and are recorded :data:`RUN` at a time, and all of
    them whenever the SDK collects (before it reads any instrument), so that no collection
    misses one.
    """

    RUN = 256

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.waiting: deque[float] = deque()  # appended and drained from different threads

    def add(self, seconds: float) -> None:
        self.waiting.append(seconds)
        if len(self.waiting) >= self.RUN:
            self.record()

    def record(self) -> None:
        """Record every waiting value now."""
        record, waiting = self.histogram.record, self.waiting
        while waiting:
            try:
                value = waiting.popleft()
            except IndexError:  # another thread drained it meanwhile
                return
            record(value)


def _observer(counts: str, keys: tuple[str, ...]) -> Callable[[CallbackOptions], list[Observation]]:
    """The callback of an observable counter: the counts of the instruments in use now (a
    meter keeps the first callbacks given for a name, while facta's instruments are made
    anew whenever a provider is chosen). The SDK runs these callbacks first when it
    collects: the waiting append latencies are recorded then."""

    def callback(options: CallbackOptions) -> list[Observation]:
        _instruments.append_latencies.record()
        values: dict[tuple[str, ...], int] = getattr(_instruments, counts).values
        return [
            Observation(count, dict(zip(keys, labels, strict=True)))
            for labels, count in list(values.items())
        ]

    return callback


class _Instruments:
    """The instruments of one meter, and attribute dicts built once per label value."""

    def __init__(self, meter: Meter) -> None:
        self.commands = _Counts()  # by (aggregate, outcome)
        self.conflicts = _Counts()  # by (aggregate,)
        self.retries = _Counts()  # by (aggregate,)
        meter.create_observable_counter(
            "facta.application.commands",
            callbacks=[_observer("commands", ("aggregate", "outcome"))],
            unit="{command}",
            description="Commands executed by Application.execute, by aggregate and outcome.",
        )
        meter.create_observable_counter(
            "facta.application.conflicts",
            callbacks=[_observer("conflicts", ("aggregate",))],
            unit="{conflict}",
            description="Appends refused because another writer moved the stream first.",
        )
        meter.create_observable_counter(
            "facta.application.retries",
            callbacks=[_observer("retries", ("aggregate",))],
            unit="{retry}",
            description="Commands decided again after a conflict.",
        )
        self.parked = _Counts()  # by (projection,)
        meter.create_observable_counter(
            "facta.projection.parked",
            callbacks=[_observer("parked", ("projection",))],
            unit="{event}",
            description="Events a projection or policy parked in the dead-letter table.",
        )
        self.stopped = meter.create_gauge(
            "facta.projection.stopped",
            description="1 while a projection or policy is stopped at a failing event, else 0.",
        )
        self.append_latencies = _Latencies(
            meter.create_histogram(
                "facta.append.duration",
                unit="s",
                description="The latency of one append to the event store.",
                explicit_bucket_boundaries_advisory=_APPEND_BUCKETS,
            )
        )
        self.lag_events = {
            kind: meter.create_gauge(
                f"facta.{kind}.lag.events",
                unit="{event}",
                description=f"Events of the log the {kind} has still to handle.",
            )
            for kind in ("projection", "relay")
        }
        self.lag_seconds = {
            kind: meter.create_gauge(
                f"facta.{kind}.lag",
                unit="s",
                description=f"Seconds since the last event the {kind} handled was recorded.",
            )
            for kind in ("projection", "relay")
        }
        self.attributes: dict[tuple[str, ...], dict[str, str]] = {}

    def labels(self, *pairs: str) -> dict[str, str]:
        """The attribute dict of ``key, value, key, value...``, built once."""
        found = self.attributes.get(pairs)
        if found is None:
            found = self.attributes[pairs] = dict(zip(pairs[::2], pairs[1::2], strict=True))
        return found


_instruments = _Instruments(metrics.get_meter(METER_NAME))
_UNKNOWN = object()


class _State:
    explicit = False
    global_on = False


def use_meter_provider(provider: MeterProvider | None) -> None:
    """Record facta's metrics with ``provider`` (None: the global provider)."""
    global _instruments
    meter = metrics.get_meter(METER_NAME) if provider is None else provider.get_meter(METER_NAME)
    _instruments = _Instruments(meter)
    _State.explicit = provider is not None


def metrics_on() -> bool:
    """Whether metrics go anywhere: a provider was given to ``instrument`` or set globally."""
    if _State.explicit or _State.global_on:
        return True
    # As for tracing: get_meter_provider() probes os.environ on every call until one is set.
    if getattr(_api, "_METER_PROVIDER", _UNKNOWN) is None:
        return False
    # The API's placeholder until one is set is a private class: compare by name.
    if type(metrics.get_meter_provider()).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider"):
        return False
    _State.global_on = True  # a global provider can only be set once: it stays
    return True


def command_done(aggregate: str, outcome: str, conflicts: int) -> None:
    """Count one executed command, and the conflicts and retries it went through."""
    ins = _instruments
    ins.commands.add(1, aggregate, outcome)
    if conflicts:
        ins.conflicts.add(conflicts, aggregate)
        retries = conflicts - 1 if outcome == "conflict" else conflicts
        if retries:
            ins.retries.add(retries, aggregate)


def append_done(seconds: float) -> None:
    """Record the latency of one append (see :class:`_Latencies`)."""
    _instruments.append_latencies.add(seconds)


def lag(
    kind: str,
    name: str,
    records: Sequence[RecordedEvent],
    reached: Position,
    head: Position | None,
) -> None:
    """Sample the lag of projection or relay ``name`` after a batch that reached ``reached``.

    Events behind are counted from the log's sequence numbers (on PostgreSQL an estimate:
    rolled-back transactions leave unused numbers); ``head`` is the newest head the caller
    has seen (None: unknown, the event lag is not sampled).
    """
    ins = _instruments
    labels = ins.labels(kind, name)
    behind = None if head is None else max(0, head.sequence - reached.sequence)
    if behind is not None:
        ins.lag_events[kind].set(behind, labels)
    if records:
        ins.lag_seconds[kind].set(max(0.0, time.time() - records[-1].recorded_at), labels)
    elif behind == 0:
        ins.lag_seconds[kind].set(0.0, labels)


def projection_stopped(name: str, stopped: bool) -> None:
    """Say whether projection or policy ``name`` is stopped at a failing event (1) or runs (0)."""
    ins = _instruments
    ins.stopped.set(int(stopped), ins.labels("projection", name))


def projection_parked(name: str, events: int = 1) -> None:
    """Count events that projection or policy ``name`` parked in the dead-letter table."""
    _instruments.parked.add(events, name)
