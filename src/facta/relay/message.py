"""The message a relay publishes for one event, and the envelope a consumer rebuilds from it.

Body: the event's JSON data. When the relay has a codec, it is the event's *current* shape
(upcast, renamed types under their current name, at the current schema version), so that
consumers see one shape per type whatever the log holds; events stored in the current shape
are published as stored, without decoding. Without a codec, the stored bytes go out as they
are. Headers (strings): the envelope, so a consumer can rebuild the RecordedEvent.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from facta.codec import Codec
from facta.domain import type_name
from facta.errors import UnknownEventType
from facta.store.base import Position, RecordedEvent

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
"""Header names of the envelope (each value a string; ``metadata`` is the whole JSON)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_:@+=~-]")


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
    kind, version, data = recorded.type, recorded.schema_version, recorded.data
    if codec is not None:
        cls = codec.event_class(kind)
        if cls is None or type_name(cls) != kind or cls.schema_version != version:
            try:
                event = codec.decode(recorded)
            except UnknownEventType:
                pass  # not the codec's business: published as stored
            else:
                if event is None:  # deprecated
                    return None
                encoded = codec.encode(event)
                kind, version, data = encoded.type, encoded.schema_version, encoded.data
    meta = recorded.meta
    headers = {
        EVENT_ID: recorded.event_id,
        EVENT_TYPE: kind,
        STREAM_ID: recorded.stream_id,
        VERSION: str(recorded.version),
        POSITION: str(recorded.position),
        SCHEMA_VERSION: str(version),
        RECORDED_AT: repr(recorded.recorded_at),
        METADATA: recorded.metadata.decode(),
    }
    correlation = meta.get("correlation_id")
    if correlation is not None:
        headers[CORRELATION_ID] = str(correlation)
    causation = meta.get("causation_id")
    if causation is not None:
        headers[CAUSATION_ID] = str(causation)
    topic = f"{topic_token(recorded.category)}.{topic_token(kind)}"
    return Message(recorded.event_id, recorded.stream_id, recorded.position, topic, data, headers)


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
            recorded_at=float(headers.get(RECORDED_AT) or 0.0),
        )
    except KeyError as exc:
        raise EnvelopeError(f"message has no {exc.args[0]!r} header: not sent by a relay") from None
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"malformed envelope header: {exc}") from None
