"""The message a relay publishes for one event, and the envelope a consumer rebuilds from it.

Body: the event's JSON data. When the relay has a codec, it is the event's *current* shape
(upcast, renamed types under their current name, at the current schema version), so that
consumers see one shape per type whatever the log holds; events stored in the current shape
are published as stored, without decoding. Without a codec, the stored bytes go out as they
are. Headers (strings): the envelope, so a consumer can rebuild the RecordedEvent, and the
trace context of the command that caused the event.

``recorded-at`` is ISO 8601 in UTC with microseconds and a ``Z``
(``2026-12-02T07:31:05.123456Z``), the format of ``recorded_at`` in the HTTP API. The trace
context is the ``traceparent`` that the command's span wrote into the event's metadata when it
was appended (see :mod:`facta.observability.tracing`), written with OpenTelemetry's configured
propagators (W3C ``traceparent`` and ``tracestate`` unless the deployer chose others): a
consumer's span continues the trace of that command, however much later the relay ran. An
event appended without tracing carries none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from opentelemetry import propagate, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from facta.codec import Codec
from facta.domain import type_name
from facta.errors import UnknownEventType
from facta.store.base import Position, RecordedEvent, category_of

EVENT_ID = "event-id"
EVENT_TYPE = "event-type"
STREAM_ID = "stream-id"
VERSION = "stream-version"
POSITION = "position"
SCHEMA_VERSION = "schema-version"
RECORDED_AT = "recorded-at"
CORRELATION_ID = "correlation-id"
CAUSATION_ID = "causation-id"
METADATA = "metadata"
TRACEPARENT = "traceparent"
"""Header names of the envelope (each value a string; ``metadata`` is the whole JSON;
``traceparent``, with ``tracestate`` when there is one, only on an event appended while
tracing)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_:@+=~-]")
_W3C = TraceContextTextMapPropagator()  # the form facta writes into metadata


class Message(msgspec.Struct, frozen=True, gc=False):
    """One event ready to publish: ``topic`` is ``category.type`` (the routing key or the
    subject's tail), ``headers`` the envelope."""

    event_id: str
    stream_id: str
    position: Position
    topic: str
    body: bytes
    headers: dict[str, str]


def topic_token(text: str) -> str:
    """``text`` as one token of a routing key or subject: anything but letters, digits and
    ``_:@+=~-`` (a dot, a wildcard, a space) becomes ``_``."""
    return _UNSAFE.sub("_", text) or "_"


def to_message(recorded: RecordedEvent, codec: Codec | None = None) -> Message | None:
    """The message for ``recorded``; None when the codec deprecates its type (not published).

    Raises EventDecodeError when the codec knows the type but cannot bring the stored data to
    the current shape (the relay stops rather than publish a shape consumers do not expect).
    A type the codec does not know is published as stored.
    """
    messages = to_messages([recorded], codec)
    return messages[0] if messages else None


def to_messages(events: Iterable[RecordedEvent], codec: Codec | None = None) -> list[Message]:
    """The messages for ``events`` in order, without those the codec deprecates (see
    :func:`to_message`, which raises the same errors).

    The relay's hot path: what repeats from one event to the next (a topic, a type's current
    shape, the metadata and timestamp that the events of one append share) is worked out
    once per batch.
    """
    messages: list[Message] = []
    add = messages.append
    topics: dict[tuple[str, str], str] = {}
    current: dict[tuple[str, int], bool] = {}
    metadata: bytes | None = None
    metadata_text = ""
    correlation: str | None = None
    causation: str | None = None
    trace_headers: dict[str, str] = {}
    recorded_at: float | None = None
    recorded_at_text = ""
    for recorded in events:
        kind, version, data = recorded.type, recorded.schema_version, recorded.data
        if codec is not None:
            as_stored = current.get((kind, version))
            if as_stored is None:
                cls = codec.event_class(kind)
                as_stored = current[kind, version] = (
                    cls is not None and type_name(cls) == kind and cls.schema_version == version
                )
            if not as_stored:
                try:
                    event = codec.decode(recorded)
                except UnknownEventType:
                    pass  # not the codec's business: published as stored
                else:
                    if event is None:  # deprecated
                        continue
                    encoded = codec.encode(event)
                    kind, version, data = encoded.type, encoded.schema_version, encoded.data
        if recorded.metadata != metadata:
            metadata = recorded.metadata
            metadata_text = metadata.decode()
            meta: dict[str, Any] = msgspec.json.decode(metadata)
            correlation = _text(meta.get("correlation_id"))
            causation = _text(meta.get("causation_id"))
            trace_headers = _trace_headers(meta) if TRACEPARENT in meta else {}
        if recorded.recorded_at != recorded_at:
            recorded_at = recorded.recorded_at
            recorded_at_text = iso_timestamp(recorded_at)
        headers = {
            EVENT_ID: recorded.event_id,
            EVENT_TYPE: kind,
            STREAM_ID: recorded.stream_id,
            VERSION: str(recorded.version),
            POSITION: str(recorded.position),
            SCHEMA_VERSION: str(version),
            RECORDED_AT: recorded_at_text,
            METADATA: metadata_text,
        }
        if correlation is not None:
            headers[CORRELATION_ID] = correlation
        if causation is not None:
            headers[CAUSATION_ID] = causation
        if trace_headers:
            headers.update(trace_headers)
        category = category_of(recorded.stream_id)
        topic = topics.get((category, kind))
        if topic is None:
            topic = topics[category, kind] = f"{topic_token(category)}.{topic_token(kind)}"
        add(Message(recorded.event_id, recorded.stream_id, recorded.position, topic, data, headers))
    return messages


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def iso_timestamp(unix_seconds: float) -> str:
    """A Unix time as ISO 8601 in UTC with microseconds and a ``Z``: the ``recorded-at``
    header, written as the HTTP API writes ``recorded_at``."""
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")


def _trace_headers(meta: dict[str, Any]) -> dict[str, str]:
    """The trace context in an event's metadata, as the configured propagators write it."""
    if not isinstance(meta.get(TRACEPARENT), str):
        return {}
    context = _W3C.extract(meta)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return {}  # not a well-formed traceparent: nothing to continue
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def _recorded_at(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return float(text)  # Unix seconds, as relays before ISO 8601 wrote it


class EnvelopeError(ValueError):
    """A received message lacks the envelope headers or has malformed ones."""


def to_recorded(body: bytes, headers: dict[str, Any]) -> RecordedEvent:
    """The RecordedEvent a consumer hands to facta handlers, rebuilt from a message.

    Raises EnvelopeError when a header is missing or malformed.
    """
    try:
        return RecordedEvent(
            event_id=str(headers[EVENT_ID]),
            stream_id=str(headers[STREAM_ID]),
            version=int(headers[VERSION]),
            position=Position.parse(str(headers[POSITION])),
            type=str(headers[EVENT_TYPE]),
            schema_version=int(headers[SCHEMA_VERSION]),
            data=bytes(body),
            metadata=str(headers.get(METADATA) or "{}").encode(),
            recorded_at=_recorded_at(str(headers.get(RECORDED_AT) or "0")),
        )
    except KeyError as exc:
        raise EnvelopeError(f"message has no {exc.args[0]!r} header: not sent by a relay") from None
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"malformed envelope header: {exc}") from None
