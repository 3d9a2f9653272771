"""The relay: publishes the event log to a broker (the log is the outbox), and consumers that
feed relayed events to handlers in other services.

Brokers: RabbitMQ (:mod:`facta.relay.rabbitmq`) and NATS JetStream (:mod:`facta.relay.nats`),
both behind the :class:`Publisher` protocol (which also says how a Kafka publisher plugs in).
Their drivers come with the ``brokers`` extra: ``pip install 'facta[brokers]'``.
"""

from facta.relay.checkpoints import (
    CheckpointStore,
    RelayCheckpoint,
    RelayLeaseLost,
    checkpoints_for,
)
from facta.relay.consumer import (
    DeadLetter,
    Deduplicator,
    Dispatcher,
    Handler,
    MemoryDeduplicator,
)
from facta.relay.message import EnvelopeError, Message, to_message, to_messages, to_recorded
from facta.relay.publisher import (
    BrokerRefused,
    Publisher,
    PublishError,
    UnroutableMessage,
    open_publisher,
)
from facta.relay.relay import Relay, RelayStatus

__all__ = [
    "BrokerRefused",
    "CheckpointStore",
    "DeadLetter",
    "Deduplicator",
    "Dispatcher",
    "EnvelopeError",
    "Handler",
    "MemoryDeduplicator",
    "Message",
    "PublishError",
    "Publisher",
    "Relay",
    "RelayCheckpoint",
    "RelayLeaseLost",
    "RelayStatus",
    "UnroutableMessage",
    "checkpoints_for",
    "open_publisher",
    "to_message",
    "to_messages",
    "to_recorded",
]
