"""Errors that callers of the store, codec and application can catch.

Each carries the facts of the failure in its attributes and its message.
"""

from __future__ import annotations

from typing import Any


class FactaError(Exception):
    """Base of every error facta raises itself (domain rejections are the domain's own)."""


class WrongExpectedVersion(FactaError):
    """An append found the stream at another version than expected; nothing was written."""

    def __init__(self, stream_id: str, expected: Any, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, expected {_describe(expected)}"
        )


def _describe(expected: Any) -> str:
    name = getattr(expected, "name", None)
    return name if isinstance(name, str) else str(expected)


class AppendConditionFailed(FactaError):
    """A conditional append found an event matching its condition's query appended after the
    condition's position (or, with none, at all); nothing was written."""

    def __init__(self, event_id: str, position: Any) -> None:
        self.event_id = event_id
        self.position = position
        super().__init__(
            f"the append condition failed: event {event_id} at {position} matches its query"
        )


class StreamNotFound(FactaError):
    """The stream has no events (or the requested version does not exist)."""

    def __init__(self, stream_id: str, detail: str = "") -> None:
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id!r} not found" + (f": {detail}" if detail else ""))


class StreamGone(StreamNotFound):
    """The stream was deleted (its last event is a tombstone), or the versions asked for were
    erased (truncated or hard deleted): HTTP 410. Its id is not handed out again."""


class DuplicateEventId(FactaError):
    """An append reused an event id that is stored with different contents or in another stream."""

    def __init__(self, event_id: str, detail: str) -> None:
        self.event_id = event_id
        super().__init__(f"event id {event_id} already stored: {detail}")


class CommandIdReused(FactaError, ValueError):
    """A command id (HTTP ``Idempotency-Key``) already names another command on this stream;
    nothing was written. A repeat of the same command returns the first result instead."""

    def __init__(self, stream_id: str, command_id: str) -> None:
        self.stream_id = stream_id
        self.command_id = command_id
        super().__init__(
            f"command id {command_id[:60]!r} was used for a different command on stream"
            f" {stream_id!r}; use a new id for a new command"
        )


class UnknownEventType(FactaError):
    """A stored event's type has no registered class, rename or deprecation."""

    def __init__(self, type_name: str, schema_version: int, stream_id: str = "") -> None:
        self.type_name = type_name
        self.schema_version = schema_version
        self.stream_id = stream_id
        where = f" in stream {stream_id!r}" if stream_id else ""
        super().__init__(
            f"no event class registered for type {type_name!r}"
            f" (schema version {schema_version}){where}"
        )


class EventDecodeError(FactaError):
    """A stored event's data does not fit its class, even after upcasting."""

    def __init__(self, type_name: str, schema_version: int, reason: str) -> None:
        self.type_name = type_name
        self.schema_version = schema_version
        super().__init__(f"cannot decode {type_name!r} (schema version {schema_version}): {reason}")


class InvalidStreamId(FactaError, ValueError):
    """A stream or entity id is empty, too long, or has characters outside the allowed set."""


class StoreUnavailable(FactaError):
    """The store could not be reached; the operation may be retried later."""


class StoreSetupError(FactaError):
    """The store a URL names is not set up, so retrying will not help: a database or role
    that does not exist, a password refused, or, opened with ``create=False``, no facta
    schema there or one that lacks migrations. ``problem`` says what is wrong, ``fix`` what
    to do about it."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}: {fix}")


class LeaseLost(FactaError):
    """This runner no longer holds the projection (another took it over, or it was switched
    away); the batch was rolled back and nothing of it was written."""

    def __init__(self, name: str, slot: int, partition: int = 0) -> None:
        self.name = name
        self.slot = slot
        self.partition = partition
        super().__init__(
            f"projection {name!r} (slot {slot}, partition {partition}) is no longer held by"
            " this runner"
        )


class RelayLeaseLost(FactaError):
    """Another relay holds this destination now (or this one's lease connection failed); the
    checkpoint was not moved."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"relay {name!r} is no longer held by this process")


class PersonalDataLocked(FactaError):
    """A data subject's key is stored wrapped by a master key, and the master key given
    (or none) does not unwrap it: configure the one it was wrapped with."""

    def __init__(self, key_id: str, reason: str) -> None:
        self.key_id = key_id
        super().__init__(f"the key {key_id} of personal data cannot be unwrapped: {reason}")
