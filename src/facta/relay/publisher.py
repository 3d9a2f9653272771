"""The Publisher protocol: what the relay needs of a broker, and opening one by URL.

A publisher sends messages in the order given and tells when the broker has taken
responsibility for them (RabbitMQ publisher confirms, JetStream publish acks). The relay owns
everything else: the checkpoint, the batching window, reconnecting after a failure and
resending from the checkpoint. So a publisher keeps no state across a failure: when
``publish`` raises, the relay closes it, connects again and sends everything after the
checkpoint again (at least once; a broker that de-duplicates by id absorbs the repeats).

Kafka plugs in the same way (no broker can run here to test one, so none ships): a
``KafkaPublisher`` with aiokafka's ``AIOKafkaProducer(enable_idempotence=True, acks="all")``
would implement ``connect`` (start the producer), ``publish`` (``send`` each message to the
topic of its category with ``key=stream_id`` — so every event of a stream lands on one
partition, in order — ``value=body``, the envelope as ``headers=[(name, value.encode())]``,
then await all the returned futures: each resolves when the partition leader and its in-sync
replicas have the record) and ``close`` (``stop``). The idempotent producer de-duplicates its
own retries within a session; across a relay restart Kafka cannot de-duplicate, so consumers
rely on the ``event-id`` header as with RabbitMQ. Set ``max_in_flight`` of the relay to what
``max.in.flight.requests.per.connection`` (≤ 5 with idempotence) times the batch size allows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from facta.errors import FactaError
from facta.relay.message import Message


class PublishError(FactaError):
    """The broker refused or lost a message, or the connection failed while publishing; the
    relay reconnects and sends again from its checkpoint."""


class BrokerRefused(PublishError):
    """The broker refused the relay for a reason that retrying cannot fix: wrong credentials,
    no permission, a virtual host or stream that does not exist, a message that no queue
    takes. The relay stops with it (``facta relay run`` exits 1) instead of retrying; the
    checkpoint stays before whatever was not confirmed."""


class UnroutableMessage(BrokerRefused):
    """RabbitMQ returned a mandatory message: no queue is bound to ``exchange`` for
    ``routing_key``, so the broker would have dropped it. Bind a queue (or give the exchange
    an alternate exchange), or let the publisher accept such drops (``unroutable=drop``)."""

    def __init__(self, destination: str, event_id: str, exchange: str, routing_key: str) -> None:
        self.event_id = event_id
        self.exchange = exchange
        self.routing_key = routing_key
        super().__init__(
            f"RabbitMQ at {destination} returned event {event_id}: no queue is bound to"
            f" exchange {exchange!r} for routing key {routing_key!r}; bind one (or give the"
            " exchange an alternate exchange), or set unroutable=drop to accept losing such"
            " messages"
        )


@runtime_checkable
class Publisher(Protocol):
    """Sends messages to one broker destination and waits for the broker's confirmations."""

    @property
    def destination(self) -> str:
        """Where this publisher sends, without secrets: names the relay's checkpoint and lease
        (``amqp://host:port/vhost?exchange=facta``, ``nats://host:port?stream=FACTA``)."""
        ...

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up as far as the client knows (the relay checks it while
        idle, so that it reconnects before the next event rather than on it)."""
        ...

    async def connect(self) -> None:
        """Open the connection and declare what is missing (exchange, stream).

        Raises BrokerRefused when the broker refuses for a reason a retry cannot fix (login,
        permissions, a missing virtual host or stream), PublishError (or OSError) when it
        cannot be reached."""
        ...

    async def publish(self, messages: Sequence[Message]) -> Awaitable[None]:
        """Hand ``messages`` to the connection in order, after those of earlier calls, and
        return an awaitable that completes once the broker confirmed every one of them.

        The relay calls this again before earlier batches are confirmed (that is its
        pipeline), never concurrently. The awaitable raises PublishError when any message is
        refused or the connection fails (some may then have reached the broker and some not;
        the relay resends from its checkpoint), BrokerRefused when retrying cannot help (a
        message no queue takes, a permission the relay lacks); so may this call."""
        ...

    async def close(self) -> None:
        """Close the connection (also after a failure); never raises."""
        ...


def open_publisher(url: str, **options: Any) -> Publisher:
    """A publisher for ``url``: ``amqp://user:pass@host:port/vhost?exchange=facta`` (RabbitMQ)
    or ``nats://host:port?stream=FACTA&subject=facta`` (NATS JetStream). Query parameters and
    keyword arguments set the publisher's options. Not connected yet.

    Raises ValueError for another scheme or an unknown option.
    """
    parts = urlsplit(url)
    query: dict[str, Any] = dict(parse_qsl(parts.query))
    query.update(options)
    base = parts._replace(query="").geturl()
    if parts.scheme in ("amqp", "amqps"):
        from facta.relay.rabbitmq import RabbitMQPublisher

        return RabbitMQPublisher(base, **_known(query, RabbitMQPublisher.OPTIONS, url))
    if parts.scheme in ("nats", "tls"):
        from facta.relay.nats import NatsPublisher

        return NatsPublisher(base, **_known(query, NatsPublisher.OPTIONS, url))
    raise ValueError(f"unknown broker URL {url!r}: use amqp://HOST/VHOST or nats://HOST:PORT")


def _known(query: dict[str, Any], options: tuple[str, ...], url: str) -> dict[str, Any]:
    unknown = sorted(set(query) - set(options))
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} in broker URL {url!r} (known: {', '.join(options)})"
        )
    return query
