"""RabbitMQ (aio-pika): the relay's publisher and a consumer for other services.

Publishing: one durable topic exchange (default ``facta``); the routing key is
``category.type`` (``account.MoneyDeposited``), so a service binds ``account.*`` or
``*.MoneyWithdrawn``. Messages are persistent (delivery mode 2), ``message_id`` is the event
id, ``correlation_id`` and ``type`` carry the correlation id and the event type, and the
envelope is in the headers (see :mod:`facta.relay.message`). The channel is in publisher
confirm mode: what ``publish`` returns resolves when the broker confirmed every message of the
batch, which for a persistent message routed to durable queues means written to disk.
RabbitMQ cannot de-duplicate: after a relay restart, a message may arrive twice; consumers
drop repeats by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
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
    "write_queue",
    "number",
    "max_content_size",
    "lock",
    "_on_confirm_frame",
)


def _destination(url: str, exchange: str) -> str:
    parts = urlsplit(url)
    vhost = parts.path[1:] if parts.path not in ("", "/") else ""
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 5672}/{vhost}?exchange={exchange}"


class _Batch:
    """A published batch waiting for the broker: delivery tags ``first`` to ``last``."""

    __slots__ = ("confirmed", "first", "last", "messages", "remaining", "timer")

    def __init__(
        self, first: int, messages: Sequence[Message], confirmed: asyncio.Future[None]
    ) -> None:
        self.first = first
        self.last = first + len(messages) - 1
        self.messages = messages
        self.confirmed = confirmed
        self.remaining = len(messages)
        self.timer: asyncio.TimerHandle | None = None


class _Unconfirmed:
    """The batches of one channel that the broker has not confirmed yet, one future each.

    aiormq settles publisher confirms with one future per message and an event-loop callback
    per message and future: at thousands of messages a second that costs the relay as much
    CPU as encoding them. RabbitMQ confirms in ranges (``multiple``: every tag up to this
    one), a few dozen acks for thousands of messages, so settling whole ranges against
    batches takes a few comparisons per ack instead. Every delivery tag is confirmed exactly
    once by the broker, either on its own or in a range; a nack fails its batch.
    """

    def __init__(self, destination: str, timeout: float) -> None:
        self.destination = destination
        self.timeout = timeout
        self.batches: deque[_Batch] = deque()
        self.settled = 0  # every delivery tag up to this one is confirmed
        self.singles: set[int] = set()  # tags above ``settled`` confirmed on their own

    def add(self, first: int, messages: Sequence[Message]) -> asyncio.Future[None]:
        """Track the batch published under tags ``first`` onwards; its future resolves when
        the broker confirmed all of it, or fails (PublishError) on a nack, a timeout, or a
        closed channel."""
        loop = asyncio.get_running_loop()
        batch = _Batch(first, messages, loop.create_future())
        if messages:
            batch.timer = loop.call_later(self.timeout, self._expire, batch)
            self.batches.append(batch)
        else:
            batch.confirmed.set_result(None)
        return batch.confirmed

    async def on_confirm_frame(self, frame: spec.Basic.Ack | spec.Basic.Nack) -> None:
        # Replaces aiormq's Channel._on_confirm_frame, which its channel reader awaits.
        tag = frame.delivery_tag
        refusal = frame if isinstance(frame, spec.Basic.Nack) else None
        if getattr(frame, "multiple", False):
            low = self.settled + 1
            for batch in self.batches:
                if batch.first > tag:
                    break
                start, end = max(batch.first, low), min(batch.last, tag)
                if start <= end:
                    count = end - start + 1
                    if self.singles:
                        count -= sum(1 for single in self.singles if start <= single <= end)
                    self._settle(batch, count, refusal, start)
            if tag > self.settled:
                self.settled = tag
                self.singles = {single for single in self.singles if single > tag}
        elif tag > self.settled and tag not in self.singles:
            self.singles.add(tag)
            while self.settled + 1 in self.singles:
                self.settled += 1
                self.singles.discard(self.settled)
            for batch in self.batches:
                if batch.first <= tag <= batch.last:
                    self._settle(batch, 1, refusal, tag)
                    break
        batches = self.batches
        while batches and batches[0].confirmed.done():
            batches.popleft()

    def _settle(
        self,
        batch: _Batch,
        count: int,
        refusal: spec.Basic.Nack | None,
        tag: int,
    ) -> None:
        if batch.confirmed.done():
            return
        if refusal is not None:
            message = batch.messages[tag - batch.first]
            self._fail(
                batch,
                f"RabbitMQ at {self.destination} did not confirm event {message.event_id}:"
                f" {refusal!r}",
            )
            return
        batch.remaining -= count
        if batch.remaining <= 0:
            batch.confirmed.set_result(None)
            if batch.timer is not None:
                batch.timer.cancel()

    def _expire(self, batch: _Batch) -> None:
        self._fail(batch, f"RabbitMQ at {self.destination} confirmed nothing for {self.timeout}s")

    def _fail(self, batch: _Batch, error: str) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
        if not batch.confirmed.done():
            batch.confirmed.set_exception(PublishError(error))
            # The relay awaits the oldest batch and reconnects on its error; the later ones
            # fail with it and may never be awaited: no "exception never retrieved" noise.
            batch.confirmed.exception()

    def on_channel_closed(self, closing: asyncio.Future[Any]) -> None:
        reason = None if closing.cancelled() else closing.exception()
        self.fail(f"the channel to RabbitMQ at {self.destination} closed: {reason!r}")

    def fail(self, error: str) -> None:
        """Fail every batch not yet confirmed (the channel or the connection is gone)."""
        while self.batches:
            self._fail(self.batches.popleft(), error)


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
        self._encoder: _amqp.PublishEncoder | None = None
        self._unconfirmed: _Unconfirmed | None = None

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
            # What the hot path relies on in aiormq's Channel (stable across aiormq 6 and 7);
            # a future aiormq without it falls back to basic_publish instead of failing.
            if all(hasattr(underlay, name) for name in _CHANNEL_STATE):
                self._encoder = _amqp.PublishEncoder(
                    underlay.number, self.exchange, underlay.max_content_size
                )
                unconfirmed = self._unconfirmed = _Unconfirmed(self.destination, self.timeout)
                # The broker's acks and nacks of this channel come to the batch tracker
                # instead of aiormq's one-future-per-message bookkeeping (see _Unconfirmed).
                setattr(underlay, "_on_confirm_frame", unconfirmed.on_confirm_frame)  # noqa: B010
                underlay.closing.add_done_callback(unconfirmed.on_channel_closed)
        except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
            await self.close()
            raise PublishError(
                f"cannot connect to RabbitMQ at {self.destination}: {exc!r}"
            ) from exc

    async def publish(self, messages: Sequence[Message]) -> Awaitable[None]:
        channel = self._channel
        if channel is None or channel.is_closed:
            raise PublishError(f"not connected to RabbitMQ at {self.destination}")
        encoder, unconfirmed = self._encoder, self._unconfirmed
        if encoder is None or unconfirmed is None:
            return self._publish_each(channel, messages)
        # The hot path: the frames of the whole batch in one write, under consecutive
        # delivery tags that the batch tracker settles as the broker's acks arrive. The
        # channel lock keeps delivery tags and frames in the same order.
        try:
            frames = encoder.encode(messages)
        except _amqp.EncodeError as exc:
            raise ValueError(f"cannot publish to RabbitMQ: {exc}") from None
        async with channel.lock:
            first = channel.delivery_tag + 1
            channel.delivery_tag += len(messages)
            confirmed = unconfirmed.add(first, messages)
            await channel.write_queue.put(ChannelFrame(payload=frames, should_close=False))
        return confirmed

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
            async with asyncio.timeout(self.timeout):
                results = await asyncio.gather(*confirms, return_exceptions=True)
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
        unconfirmed, self._unconfirmed, self._encoder = self._unconfirmed, None, None
        if unconfirmed is not None:
            unconfirmed.fail(f"the connection to RabbitMQ at {self.destination} was closed")
        if connection is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await connection.close()


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
                    async with asyncio.timeout(2.0):
                        await self._ack_now()
                self._unacked, self._pending = None, 0
            raise ConnectionError("RabbitMQ closed the connection")
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await connection.close()

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
