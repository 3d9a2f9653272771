"""The relay: publishes the event log to a broker (the log is the outbox), and consumers that
feed relayed events to handlers in other services.

Brokers: RabbitMQ (:mod:`facta.relay.rabbitmq`) and NATS JetStream (:mod:`facta.relay.nats`),
both behind the :class:`Publisher` protocol (which also says how a Kafka publisher plugs in).
Their drivers come with the ``brokers`` extra: ``pip install 'facta[brokers]'``.
"""

from facta.errors import RelayLeaseLost
from facta.relay.consumer import (
    DeadLetter,
    Deduplicator,
    Dispatcher,
    Handler,
    MemoryDeduplicator,
)
from facta.relay.fleet import RelayFleet
from facta.relay.message import EnvelopeError, Message, to_message, to_messages, to_recorded
from facta.relay.publisher import (
    BrokerRefused,
    Publisher,
    PublishError,
    UnroutableMessage,
    open_publisher,
)
from facta.relay.relay import Relay, RelayStatus
from facta.store.checkpoints import CheckpointStore, RelayCheckpoint

__all__ = [
    "CheckpointStore",
    "RelayCheckpoint",
    "BrokerRefused",
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
    "RelayFleet",
    "RelayLeaseLost",
    "RelayStatus",
    "UnroutableMessage",
    "open_publisher",
    "to_message",
    "to_messages",
    "to_recorded",
]
