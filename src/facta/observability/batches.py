"""Tracing and lag metrics of the read side's batches: a projection's or policy's batch, a
relay's, and an inline projection's work inside an append. Each span continues the trace of
the commands that caused its events (their traceparent in the events' metadata)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import msgspec
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind

from facta.observability import logging as _logs
from facta.observability import metrics as _metrics
from facta.observability.tracing import (
    MAX_LINKS,
    TRACEPARENT,
    LiveSpan,
    propagator,
    tracing_on,
)
from facta.store.base import Position, RecordedEvent


def context_of(record: RecordedEvent) -> Context | None:
    """The trace context an event's metadata carries, if any."""
    if b'"traceparent"' not in record.metadata:
        return None
    try:
        values = msgspec.json.decode(record.metadata)
    except msgspec.DecodeError:
        return None
    if not isinstance(values, dict) or not isinstance(values.get(TRACEPARENT), str):
        return None
    context = propagator.extract(values)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


class BatchScope:
    """The span and lag metrics of one projection or relay batch (``with``).

    The span continues the trace of the batch's first traced event and links up to
    :data:`MAX_LINKS` other traces; on exit the lag is sampled (see
    :func:`facta.observability.metrics.lag`).
    """

    __slots__ = ("_cm", "_log", "head", "kind", "name", "reached", "records", "span_name")

    def __init__(
        self,
        kind: str,
        name: str,
        records: Sequence[RecordedEvent],
        reached: Position | None,
        head: Position | None,
        span_name: str = "",
    ) -> None:
        self.kind, self.name, self.records = kind, name, records
        self.reached, self.head = reached, head
        self.span_name = span_name or f"facta.{kind}.batch"
        self._cm: LiveSpan | None = None
        self._log: Any = None

    def __enter__(self) -> Span:
        if _logs.enabled():
            self._log = _logs.bind(**{self.kind: self.name})
        if not tracing_on():
            return INVALID_SPAN
        parent: Context | None = None
        links: list[Link] = []
        seen: set[int] = set()
        correlations: list[str] = []
        for record in self.records:
            context = context_of(record)
            if context is None:
                continue
            span_context = trace.get_current_span(context).get_span_context()
            if parent is None:
                parent = context
                seen.add(span_context.trace_id)
            elif span_context.trace_id not in seen and len(links) < MAX_LINKS:
                seen.add(span_context.trace_id)
                links.append(Link(span_context))
            correlation = record.meta.get("correlation_id")
            if isinstance(correlation, str) and len(correlations) < MAX_LINKS:
                correlations.append(correlation)
        attributes: dict[str, Any] = {
            f"facta.{self.kind}": self.name,
            "facta.batch.events": len(self.records),
        }
        if self.reached is not None:
            attributes["facta.batch.position"] = str(self.reached)
        if correlations:
            attributes["facta.correlation_ids"] = sorted(set(correlations))
        self._cm = LiveSpan(self.span_name, SpanKind.CONSUMER, attributes, parent, links)
        return self._cm.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None and self.reached is not None:
            _metrics.lag(self.kind, self.name, self.records, self.reached, self.head)
        if self._log is not None:
            _logs.unbind(self._log)
        if self._cm is not None:
            self._cm.__exit__(exc_type, exc, tb)


def projection_batch(
    name: str, records: Sequence[RecordedEvent], reached: Position, head: Position | None
) -> BatchScope:
    """The scope of one batch of projection or policy ``name`` that reaches ``reached``."""
    return BatchScope("projection", name, records, reached, head)


def relay_batch(
    name: str, records: Sequence[RecordedEvent], reached: Position, head: Position | None
) -> BatchScope:
    """The scope of one batch relay ``name`` publishes, up to ``reached``."""
    return BatchScope("relay", name, records, reached, head)


def inline_projection(name: str, records: Sequence[RecordedEvent]) -> BatchScope:
    """The scope of inline projection ``name`` handling ``records`` inside their append.

    Parented by the events' own trace context, not the current one: a backend may commit
    several commands' appends in one transaction, from a writer task of its own."""
    return BatchScope("projection", name, records, None, None, "facta.projection.inline")
