"""RabbitMQ (aio-pika): the relay's publisher and a consumer for other services.

Publishing: one durable topic exchange (default ``facta``); the routing key is
``category.type`` (``account.MoneyDeposited``), so a service binds ``account.*`` or
``*.MoneyWithdrawn``. Messages are persistent (delivery mode 2), ``message_id`` is the event
id, ``correlation_id`` and ``type`` carry the correlation id and the event type, and the
envelope is in the headers (see :mod:`facta.relay.message`). The channel is in publisher
confirm mode: ``publish`` returns when the broker confirmed every message of the batch, which
for a persistent message routed to durable queues means written to disk. RabbitMQ cannot
de-duplicate: after a relay restart, a message may arrive twice; consumers drop repeats by
event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aiormq.abc import ChannelFrame
from pamqp import commands as spec

from facta.codec import Codec
from facta.relay import _amqp
from facta.relay.consumer import (
    DeadLetter,
    Deduplicator,
    Dispatcher,
    Handler,
    _reraise_cancellation,
    backoff,
)
from facta.relay.message import CORRELATION_ID, EVENT_TYPE, Message
from facta.relay.publisher import PublishError

log = logging.getLogger("facta.relay")

_PERSISTENT = 2
_CHANNEL_STATE = (
    "delivery_tag",
    "confirmations",
    "write_queue",
    "number",
    "max_content_size",
    "lock",
)


def _destination(url: str, exchange: str) -> str:
    parts = urlsplit(url)
    vhost = parts.path[1:] if parts.path not in ("", "/") else ""
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 5672}/{vhost}?exchange={exchange}"


class RabbitMQPublisher:
    """Publishes to a topic exchange with publisher confirms.

    ``url`` is an AMQP URL (``amqp://guest:guest@127.0.0.1:5672/``); ``exchange`` (declared
    durable if missing); ``timeout`` seconds to wait for a batch's confirms before the relay
    treats the connection as broken; ``name`` shows in the broker's connection list.
    """

    OPTIONS = ("exchange", "timeout", "name")

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "facta",
        timeout: float | str = 30.0,
        name: str = "facta-relay",
    ) -> None:
        if not exchange:
            raise ValueError("the exchange name must not be empty")
        self.url = url
        self.exchange = exchange
        self.timeout = float(timeout)
        self.name = name
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aiormq.Channel | None = None
        self._raw = False

    @property
    def destination(self) -> str:
        return _destination(self.url, self.exchange)

    @property
    def is_connected(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    async def connect(self) -> None:
        # A plain (not robust) connection: after a drop the relay itself reconnects and
        # resends from its checkpoint, which is what keeps the order within a stream.
        try:
            self._connection = await aio_pika.connect(
                self.url, timeout=self.timeout, client_properties={"connection_name": self.name}
            )
            channel = await self._connection.channel(publisher_confirms=True)
            await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
            # The hot path publishes on the underlying aiormq channel: aio-pika's Message and
            # Exchange.publish add a few objects and checks per event that we do not need.
            underlay = await channel.get_underlay_channel()
            assert isinstance(underlay, aiormq.Channel)
            self._channel = underlay
            # What the hot path relies on in aiormq's Channel (stable across aiormq 6); a
            # future aiormq without it falls back to basic_publish instead of failing.
            self._raw = all(hasattr(underlay, name) for name in _CHANNEL_STATE)
        except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
            await self.close()
            raise PublishError(
                f"cannot connect to RabbitMQ at {self.destination}: {exc!r}"
            ) from exc

    async def publish(self, messages: Sequence[Message]) -> Awaitable[None]:
        channel = self._channel
        if channel is None or channel.is_closed:
            raise PublishError(f"not connected to RabbitMQ at {self.destination}")
        if not self._raw:
            return self._publish_each(channel, messages)
        # The hot path: the frames of the whole batch in one write, each message's
        # confirmation registered under its delivery tag the way aiormq's basic_publish
        # does, so aiormq resolves them as the broker's acks arrive. The channel lock keeps
        # delivery tags and frames in the same order.
        loop = asyncio.get_running_loop()
        exchange = _amqp.short(self.exchange)
        frames = bytearray()
        confirms: list[asyncio.Future[Any]] = []
        async with channel.lock:
            tag = channel.delivery_tag
            pending = channel.confirmations
            number, max_body = channel.number, channel.max_content_size
            try:
                for m in messages:
                    frames += _amqp.publish_frames(number, exchange, m, max_body)
            except _amqp.EncodeError as exc:
                raise ValueError(f"cannot publish to RabbitMQ: {exc}") from None
            for _ in messages:
                tag += 1
                confirm = loop.create_future()
                pending[tag] = confirm
                confirms.append(confirm)
            channel.delivery_tag = tag
            await channel.write_queue.put(ChannelFrame(payload=bytes(frames), should_close=False))
        return asyncio.ensure_future(self._confirmed(messages, confirms))

    def _publish_each(
        self, channel: aiormq.Channel, messages: Sequence[Message]
    ) -> Awaitable[None]:
        """aiormq's own basic_publish per message (if its internals ever change)."""
        send, exchange = channel.basic_publish, self.exchange
        # One task per message, created in log order: each takes the channel's lock (FIFO)
        # and queues its frames without waiting for them to drain, so frames leave in order;
        # the tasks then wait for their confirms concurrently.
        confirms = [
            asyncio.ensure_future(
                send(
                    m.body,
                    exchange=exchange,
                    routing_key=m.topic,
                    properties=spec.Basic.Properties(
                        content_type="application/json",
                        delivery_mode=_PERSISTENT,
                        message_id=m.event_id,
                        correlation_id=m.headers.get(CORRELATION_ID),
                        message_type=m.headers[EVENT_TYPE],
                        app_id="facta",
                        headers=m.headers,  # type: ignore[arg-type]
                    ),
                    wait=False,
                )
            )
            for m in messages
        ]
        return asyncio.ensure_future(self._confirmed(messages, confirms))

    async def _confirmed(self, messages: Sequence[Message], confirms: list[Any]) -> None:
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*confirms, return_exceptions=True), self.timeout
            )
        except TimeoutError:
            raise PublishError(
                f"RabbitMQ at {self.destination} confirmed nothing for {self.timeout}s"
            ) from None
        for message, result in zip(messages, results, strict=True):
            if not isinstance(result, spec.Basic.Ack):
                raise PublishError(
                    f"RabbitMQ at {self.destination} did not confirm event {message.event_id}:"
                    f" {result!r}"
                )

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5.0)


class RabbitMQConsumer:
    """Feeds relayed events from a durable queue to ``handler``, for another service.

    The queue (declared durable if missing) is bound to ``exchange`` with ``bindings``
    (routing-key patterns such as ``account.*``; default all). Each message is handled in
    turn — the queue's order, which is the log's order within a stream — and acked only after
    the handler returned; a repeat of an event id already handled is acked and skipped; a
    handler that fails ``max_tries`` times sends the message, with its error in the
    ``x-facta-error`` header, to the dead-letter queue ``{queue}.dlq``, then it is acked.
    A dropped connection is reopened by itself with back-off; unacked messages come back.
    """

    def __init__(
        self,
        url: str,
        queue: str,
        handler: Handler,
        *,
        exchange: str = "facta",
        bindings: Sequence[str] = ("#",),
        codec: Codec | None = None,
        deduplicator: Deduplicator | None = None,
        max_tries: int = 5,
        retry_delay: float = 0.05,
        prefetch: int = 256,
        name: str = "facta-consumer",
    ) -> None:
        self.url = url
        self.queue = queue
        self.exchange = exchange
        self.bindings = tuple(bindings)
        self.prefetch = prefetch
        self.name = name
        self.dispatcher = Dispatcher(
            handler,
            codec=codec,
            deduplicator=deduplicator,
            max_tries=max_tries,
            retry_delay=retry_delay,
        )
        self.connected = asyncio.Event()
        """Set while the consumer is connected and consuming (for readiness checks)."""
        self._unacked: aio_pika.abc.AbstractIncomingMessage | None = None
        self._pending = 0

    async def run(self) -> None:
        """Consume until cancelled, reconnecting after a dropped connection."""
        failures = 0
        while True:
            try:
                await self._consume()
            except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
                _reraise_cancellation()
                self.connected.clear()
                failures += 1
                delay = backoff(failures)
                log.warning(
                    "consumer %s lost RabbitMQ (%r); again in %.2fs", self.queue, exc, delay
                )
                await asyncio.sleep(delay)

    async def _consume(self) -> None:
        connection = await aio_pika.connect(
            self.url, client_properties={"connection_name": self.name}
        )
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=self.prefetch)
            exchange = await channel.declare_exchange(
                self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            dead = await channel.declare_queue(f"{self.queue}.dlq", durable=True)
            queue = await channel.declare_queue(self.queue, durable=True)
            for pattern in self.bindings:
                await queue.bind(exchange, pattern)
            closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def on_close(*_: Any) -> None:
                if not closed.done():
                    closed.set_result(None)

            connection.close_callbacks.add(on_close)
            flusher = asyncio.create_task(self._flush_acks())
            try:
                async with queue.iterator() as messages:
                    self.connected.set()
                    async for message in messages:
                        await self._handle(channel, dead.name, message)
                        if closed.done():
                            break
            finally:
                flusher.cancel()
                with contextlib.suppress(Exception):  # a closed connection: they come back
                    await asyncio.wait_for(self._ack_now(), 2.0)
                self._unacked, self._pending = None, 0
            raise ConnectionError("RabbitMQ closed the connection")
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5.0)

    async def _ack(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        # Acks go in bulk (``multiple``: this one and every earlier delivery): messages are
        # handled in turn, so everything before the last handled one is done too. One frame
        # per 64 messages, or after 20 ms of quiet, instead of one per message.
        self._unacked, self._pending = message, self._pending + 1
        if self._pending >= 64:
            await self._ack_now()

    async def _ack_now(self) -> None:
        message, self._unacked, self._pending = self._unacked, None, 0
        if message is not None:
            await message.ack(multiple=True)

    async def _flush_acks(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            await self._ack_now()

    async def _handle(
        self,
        channel: aio_pika.abc.AbstractChannel,
        dead_queue: str,
        message: aio_pika.abc.AbstractIncomingMessage,
    ) -> None:
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in message.headers.items()}
        failure = await self.dispatcher.deliver(message.body, headers)
        if failure is not None:
            await self._dead_letter(channel, dead_queue, message, failure)
        await self._ack(message)

    async def _dead_letter(
        self,
        channel: aio_pika.abc.AbstractChannel,
        dead_queue: str,
        message: aio_pika.abc.AbstractIncomingMessage,
        failure: DeadLetter,
    ) -> None:
        headers = dict(message.headers)
        headers["x-facta-error"] = failure.error
        headers["x-facta-tries"] = failure.tries
        headers["x-facta-routing-key"] = message.routing_key or ""
        await channel.default_exchange.publish(
            aio_pika.Message(
                message.body,
                headers=headers,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id or str(uuid.uuid4()),
                correlation_id=message.correlation_id,
                type=message.type,
            ),
            routing_key=dead_queue,
        )
