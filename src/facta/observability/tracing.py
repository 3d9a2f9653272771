"""OpenTelemetry spans of facta's work, and the trace context carried in event metadata.

Spans (all under the instrumentation scope ``facta``):

- ``facta.execute`` a command: ``facta.aggregate``, ``facta.stream``, ``facta.command``,
  ``facta.correlation_id``, ``facta.causation_id``, ``facta.command_id``, ``facta.version``,
  ``facta.retries``, ``facta.outcome``;
- ``facta.append`` an append: ``facta.stream``, ``facta.events``, ``facta.expected_version``;
- ``facta.load`` a replay: ``facta.stream``, ``facta.events_replayed``, ``facta.snapshot_used``,
  ``facta.snapshot_version``;
- ``facta.projection.batch`` and ``facta.relay.batch``: ``facta.projection`` or
  ``facta.relay``, ``facta.batch.events``, ``facta.batch.position``,
  ``facta.correlation_ids``.

A command writes the W3C ``traceparent`` of its span into every event's metadata; a batch
continues the trace of its first traced event and links the others, so one trace shows a
command and everything it caused, however many processes that took.

The hot path stays cheap: with no SDK configured :func:`tracing_on` is one function call and
spans are a shared no-op context manager; metadata is only decoded when a span records.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.metrics import _internal as _metrics_api
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from facta.domain import DomainError
from facta.errors import StoreUnavailable, WrongExpectedVersion
from facta.observability import logging as _logs
from facta.observability import metrics as _metrics

if TYPE_CHECKING:
    pass

TRACER_NAME = "facta"
"""The instrumentation scope of every facta span."""

TRACEPARENT = "traceparent"
"""The metadata key of an event's W3C trace context (``00-TRACE_ID-SPAN_ID-FLAGS``)."""

MAX_LINKS = 32
"""At most this many other traces are linked from one batch span."""

propagator = TraceContextTextMapPropagator()
"""How trace contexts are written into event metadata and read back (W3C traceparent)."""
_NULL: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)
_UNKNOWN = object()


class _State:
    tracer: Tracer = trace.get_tracer(TRACER_NAME)
    provider: TracerProvider | None = None
    explicit = False
    global_on = False


def instrument(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Send facta's spans to ``tracer_provider`` and its metrics to ``meter_provider``
    instead of the global providers (None: back to the global one).

    Without this call facta uses whatever provider is set globally (for example by
    ``opentelemetry-instrument``), and does nothing while there is none.
    """
    if tracer_provider is None:
        _State.tracer, _State.explicit = trace.get_tracer(TRACER_NAME), False
    else:
        _State.tracer, _State.explicit = tracer_provider.get_tracer(TRACER_NAME), True
    _State.provider = tracer_provider
    _metrics.use_meter_provider(meter_provider)


def tracing_on() -> bool:
    """Whether spans go anywhere: a provider was given to :func:`instrument` or set globally."""
    if _State.explicit or _State.global_on:
        return True
    # get_tracer_provider() probes os.environ on every call until a provider is set (a
    # KeyError each time, ~1 µs): read the API's global first, where this version keeps it.
    if getattr(trace, "_TRACER_PROVIDER", _UNKNOWN) is None:
        return False
    provider = trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        return False
    _State.global_on = True  # a global provider can only be set once: it stays
    _State.tracer = provider.get_tracer(TRACER_NAME)  # the real one: no proxy in between
    return True


def tracer_provider() -> TracerProvider | None:
    """The provider facta's spans go to, if any (for instrumenting the HTTP edge alike)."""
    if not tracing_on():
        return None
    return _State.provider or trace.get_tracer_provider()


def span(
    name: str,
    attributes: dict[str, Any] | None = None,
    *,
    context: Context | None = None,
    links: Sequence[Link] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AbstractContextManager[Span]:
    """A span made current for the ``with`` block; a shared no-op when tracing is off."""
    if not tracing_on():
        return _NULL
    return LiveSpan(name, kind, attributes, context, links)


class LiveSpan:
    """A started span made current until ``close`` (or the end of a ``with`` block).

    What ``start_as_current_span`` does, without its three nested generator context managers
    (they cost more than the span itself when it is not sampled).
    """

    __slots__ = ("span", "token")

    def __init__(
        self,
        name: str,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
        context: Context | None = None,
        links: Sequence[Link] | None = None,
    ) -> None:
        self.span = _State.tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, links=links
        )
        self.token = otel_context.attach(trace.set_span_in_context(self.span))

    def close(self) -> None:
        """Make the span no longer current, and end it."""
        otel_context.detach(self.token)
        self.span.end()

    def __enter__(self) -> Span:
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self.span.is_recording():
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self.close()


def _under_unsampled_span() -> bool:
    """Whether the current span is one the SDK decided not to record.

    facta then starts no span of its own: the default ``ParentBased`` samplers would drop
    them anyway, and an unrecorded span still costs the SDK several µs (ids, the sampler,
    the context). A command run under an unsampled HTTP request costs no tracing at all.
    """
    current = trace.get_current_span()
    return current is not INVALID_SPAN and not current.is_recording()


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "accepted"
    if isinstance(exc, DomainError):
        return "rejected"
    if isinstance(exc, WrongExpectedVersion):
        return "conflict"
    if isinstance(exc, StoreUnavailable | OSError | TimeoutError):
        return "unavailable"
    return "error"


def observed() -> bool:
    """Whether any of spans, metrics or log ids is being recorded (else the scopes below are
    shared no-ops)."""
    return tracing_on() or _metrics.metrics_on() or _logs.enabled()


def command_scope(aggregate: str, stream_id: str, command: object) -> CommandScope:
    """The scope of one ``Application.execute``: a shared no-op when nothing is observed."""
    if _State.explicit or _State.global_on:  # tracing is on: the quickest answer
        return CommandScope(aggregate, stream_id, command)
    # observed(), unrolled for the common case of no SDK at all: two module lookups.
    if (
        getattr(trace, "_TRACER_PROVIDER", _UNKNOWN) is None
        and getattr(_metrics_api, "_METER_PROVIDER", _UNKNOWN) is None
        and not (_State.explicit or _metrics._State.explicit or _logs._enabled)
    ):
        return _QUIET_COMMAND
    if not observed():
        return _QUIET_COMMAND
    return CommandScope(aggregate, stream_id, command)


class CommandScope:
    """The span, metrics and log ids of one ``Application.execute`` (``with``).

    Counts the command by outcome when it ends (a DomainError is ``rejected`` and is not a
    span error); :meth:`conflict` counts a refused append; :meth:`stamp` puts the trace
    context into the events' metadata.

    A plain ``with`` (nothing in it waits), and a span's attributes are only set while it
    records: with an SDK sampling 1% of traces, the other 99% of commands pay for little
    more than the span the SDK starts and drops.
    """

    __slots__ = (
        "_cm",
        "_log",
        "aggregate",
        "command",
        "conflicts",
        "recording",
        "span",
        "stream_id",
    )

    def __init__(self, aggregate: str, stream_id: str, command: object) -> None:
        self.aggregate = aggregate
        self.stream_id = stream_id
        self.command = command
        self.conflicts = 0
        self.span: Span = INVALID_SPAN
        self.recording = False
        self._cm: LiveSpan | None = None
        self._log: Any = None

    def __enter__(self) -> CommandScope:
        if tracing_on() and not _under_unsampled_span():
            self._cm = LiveSpan(
                "facta.execute",
                attributes={
                    "facta.aggregate": self.aggregate,
                    "facta.stream": self.stream_id,
                    "facta.command": type(self.command).__name__,
                },
            )
            self.span = self._cm.span
            self.recording = self.span.is_recording()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        outcome = _outcome(exc)
        _metrics.command_done(self.aggregate, outcome, self.conflicts)
        if self._log is not None:
            _logs.unbind(self._log)
        if self._cm is None:
            return
        if self.recording:
            span = self.span
            span.set_attribute("facta.outcome", outcome)
            span.set_attribute(
                "facta.retries", self.conflicts - (outcome == "conflict") if self.conflicts else 0
            )
            if outcome in ("conflict", "unavailable", "error") and exc is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._cm.close()

    def conflict(self) -> None:
        """An append of this command was refused by another writer's concurrent append."""
        self.conflicts += 1

    def stamp(self, metadata: bytes) -> bytes:
        """The events' ``metadata`` with this span's ``traceparent`` added (unless the caller
        set one), and its ids recorded on the span and bound for log lines."""
        recording = self.recording
        if not recording and not _logs.enabled():
            return metadata
        values: dict[str, Any] = msgspec.json.decode(metadata)
        ids = {
            key: values[key]
            for key in ("correlation_id", "causation_id", "command_id")
            if isinstance(values.get(key), str)
        }
        if recording:
            self.span.set_attributes({f"facta.{key}": value for key, value in ids.items()})
            if TRACEPARENT not in values:
                propagator.inject(values)
                metadata = msgspec.json.encode(values)
        if _logs.enabled():
            self._log = _logs.bind(stream=self.stream_id, **ids)
        return metadata

    def appending(self, events: int, expected: object) -> AbstractContextManager[Any]:
        """The scope of one append of this command: timed, and a span when this command's
        span records."""
        if self.recording:
            return AppendScope(self.stream_id, events, expected)
        return _AppendTimer()

    def done(self, version: int, events: int) -> None:
        """The command appended ``events`` events and left the stream at ``version``."""
        if self.recording:
            self.span.set_attribute("facta.version", version)
            self.span.set_attribute("facta.events", events)


class _QuietCommandScope(CommandScope):
    """CommandScope when nothing is observed: stateless, so one instance serves all."""

    def __enter__(self) -> CommandScope:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def conflict(self) -> None:
        """Nothing to count."""

    def stamp(self, metadata: bytes) -> bytes:
        """The metadata unchanged."""
        return metadata

    def appending(self, events: int, expected: object) -> AbstractContextManager[Any]:
        """A shared no-op."""
        return _NULL

    def done(self, version: int, events: int) -> None:
        """Nothing to record."""


_QUIET_COMMAND = _QuietCommandScope("", "", None)


class _AppendTimer:
    """Times one append for the latency histogram (an append with no span of its own)."""

    __slots__ = ("_started",)

    def __enter__(self) -> Span:
        self._started = time.perf_counter()
        return INVALID_SPAN

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _metrics.append_done(time.perf_counter() - self._started)


class AppendScope(_AppendTimer):
    """Times one append (the latency histogram) and spans it: the append of a command whose
    span records."""

    __slots__ = ("_cm", "attributes")

    def __init__(self, stream_id: str, events: int, expected: object) -> None:
        self.attributes = {
            "facta.stream": stream_id,
            "facta.events": events,
            "facta.expected_version": str(expected),
        }
        self._cm: LiveSpan | None = None

    def __enter__(self) -> Span:
        super().__enter__()
        self._cm = LiveSpan("facta.append", SpanKind.CLIENT, self.attributes)
        return self._cm.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        if self._cm is None:
            return
        if exc is not None:
            span = self._cm.span
            conflict = isinstance(exc, WrongExpectedVersion)
            span.set_attribute("facta.conflict", conflict)
            if not conflict:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._cm.close()


def loading(stream_id: str, version: int | None) -> AbstractContextManager[Span]:
    """The span of replaying one stream (to ``version``, or its end)."""
    if not tracing_on() or _under_unsampled_span():
        return _NULL
    attributes: dict[str, Any] = {"facta.stream": stream_id}
    if version is not None:
        attributes["facta.to_version"] = version
    return LiveSpan("facta.load", attributes=attributes)


def loaded(replayed: int, snapshot_version: int) -> None:
    """Record on the current load span how many events it replayed and from which snapshot
    version (0: none used)."""
    if tracing_on():
        current = trace.get_current_span()
        current.set_attribute("facta.events_replayed", replayed)
        current.set_attribute("facta.snapshot_used", snapshot_version > 0)
        current.set_attribute("facta.snapshot_version", snapshot_version)
