"""facta: event sourcing and CQRS for Python, typed and async.

The public API is re-exported here; everything else is importable but internal.
"""

from facta.application import Application, CommandResult, EventEnvelope, StateAt
from facta.codec import Codec
from facta.domain import Aggregate, Command, DomainError, EntityId, Event, check_entity_id
from facta.errors import (
    CommandIdReused,
    DuplicateEventId,
    EventDecodeError,
    FactaError,
    InvalidStreamId,
    StoreSetupError,
    StoreUnavailable,
    StreamNotFound,
    UnknownEventType,
    WrongExpectedVersion,
)
from facta.store import Engine, open_store
from facta.store.base import (
    ANY,
    NO_STREAM,
    START,
    STREAM_EXISTS,
    AppendResult,
    EventStore,
    ExpectedVersion,
    Hook,
    NewEvent,
    Position,
    RecordedEvent,
    Snapshot,
    Transaction,
    TransactionHook,
)

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "STREAM_EXISTS",
    "Aggregate",
    "AppendResult",
    "Application",
    "Codec",
    "Command",
    "CommandResult",
    "DomainError",
    "CommandIdReused",
    "DuplicateEventId",
    "Engine",
    "EntityId",
    "Event",
    "EventDecodeError",
    "EventEnvelope",
    "EventStore",
    "ExpectedVersion",
    "Hook",
    "FactaError",
    "InvalidStreamId",
    "NewEvent",
    "Position",
    "RecordedEvent",
    "Snapshot",
    "StateAt",
    "StoreSetupError",
    "StoreUnavailable",
    "Transaction",
    "TransactionHook",
    "StreamNotFound",
    "UnknownEventType",
    "WrongExpectedVersion",
    "check_entity_id",
    "open_store",
]
