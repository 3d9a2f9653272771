"""RabbitMQ (aio-pika): the relay's publisher and a consumer for other services.

Publishing: one durable topic exchange (default ``facta``); the routing key is
``category.type`` (``account.MoneyDeposited``), so a service binds ``account.*`` or
``*.MoneyWithdrawn``. Messages are persistent (delivery mode 2), ``message_id`` is the event
id, ``correlation_id`` and ``type`` carry the correlation id and the event type, and the
envelope is in the headers (see :mod:`facta.relay.message`). The channel is in publisher
confirm mode: what ``publish`` returns resolves when the broker confirmed every message of the
batch, which for a persistent message routed to durable queues means written to disk.
Messages are ``mandatory``: one that no queue takes comes back, and the relay stops before it
(UnroutableMessage) rather than move its checkpoint past a message nobody got, unless the
publisher is told to accept such drops (``unroutable="drop"``). RabbitMQ cannot
de-duplicate: after a relay restart, a message may arrive twice; consumers drop repeats by
event id.

Two ways to publish, the same messages: a fast path on aiormq's channel internals
(:mod:`facta.relay._aiormq`), taken only with the aiormq version it was checked against
(:mod:`facta.relay._fastpath`), and aio-pika's public API otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq
from pamqp import commands as spec

from facta._retry import backoff
from facta.codec import Codec
from facta.relay import _aiormq, _fastpath
from facta.relay.consumer import (
    DeadLetter,
    Deduplicator,
    Dispatcher,
    Handler,
    _reraise_cancellation,
)
from facta.relay.message import CORRELATION_ID, EVENT_TYPE, Message
from facta.relay.publisher import BrokerRefused, PublishError, UnroutableMessage

log = logging.getLogger("facta.relay")

_UNROUTABLE = ("fail", "drop")
_CONNECT_ERRORS = (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError)


def _destination(url: str, exchange: str) -> str:
    parts = urlsplit(url)
    vhost = parts.path[1:] if parts.path not in ("", "/") else ""
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 5672}/{vhost}?exchange={exchange}"


def refused(exc: BaseException | None, url: str, exchange: str) -> BrokerRefused | None:
    """The BrokerRefused that ``exc`` amounts to, if retrying cannot fix it: a login refused,
    a virtual host that does not exist or is closed to the user, access refused, an
    exchange declared with other settings. None for what may pass (a refused, dropped or
    timed-out connection, a broker shutting down)."""
    where = f"RabbitMQ at {_destination(url, exchange)}"
    parts = urlsplit(url)
    user = unquote(parts.username or "guest")
    vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
    reason = " ".join(str(arg) for arg in getattr(exc, "args", ()) if arg) or repr(exc)
    if isinstance(
        exc, aiormq.exceptions.ProbableAuthenticationError | aiormq.exceptions.AuthenticationError
    ):
        return BrokerRefused(f"{where} refused the login of user {user!r}: {reason}")
    if isinstance(exc, aiormq.exceptions.ConnectionNotAllowed) or (
        # aiormq reports the broker's refusal to open a virtual host as an unexpected frame.
        isinstance(exc, aiormq.exceptions.InvalidFrameError) and "Connection.Close" in str(exc)
    ):
        return BrokerRefused(
            f"{where} refused to open virtual host {vhost!r}: it does not exist, or user"
            f" {user!r} has no access to it"
        )
    if isinstance(exc, aiormq.exceptions.ChannelAccessRefused):
        return BrokerRefused(f"{where} refused user {user!r} access: {reason}")
    if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
        return BrokerRefused(f"{where}: exchange {exchange!r} exists with other settings: {reason}")
    return None


class _PublicChannel:
    """Publishing through aio-pika's public API: ``Exchange.publish`` for each message."""

    def __init__(
        self,
        channel: aio_pika.abc.AbstractChannel,
        exchange: aio_pika.abc.AbstractExchange,
        *,
        mandatory: bool,
        publisher: RabbitMQPublisher,
    ) -> None:
        self.channel = channel
        self.exchange = exchange
        self.mandatory = mandatory
        self.publisher = publisher
        self._pending: set[asyncio.Future[Any]] = set()

    @property
    def is_open(self) -> bool:
        return not self.channel.is_closed

    async def publish(self, messages: Sequence[Message]) -> Awaitable[None]:
        publish, mandatory = self.exchange.publish, self.mandatory
        # One task per message, created in log order. Each takes the channel's lock before
        # anything in it waits (aio-pika and aiormq take it first thing) and the lock is
        # FIFO, so frames leave in log order; the tasks then wait for their confirms
        # concurrently. The order tests of the relay run on this path too.
        confirms = [
            asyncio.ensure_future(publish(_message(m), m.topic, mandatory=mandatory))
            for m in messages
        ]
        confirmed = asyncio.ensure_future(self._confirmed(messages, confirms))
        self._pending.add(confirmed)
        confirmed.add_done_callback(self._settled)
        return confirmed

    def _settled(self, confirmed: asyncio.Future[Any]) -> None:
        self._pending.discard(confirmed)
        if not confirmed.cancelled():
            # The relay awaits the oldest batch and reconnects on its error; the later ones
            # fail with it and may never be awaited: no "exception never retrieved" noise.
            confirmed.exception()

    async def _confirmed(self, messages: Sequence[Message], confirms: list[Any]) -> None:
        publisher = self.publisher
        try:
            async with asyncio.timeout(publisher.timeout):
                results = await asyncio.gather(*confirms, return_exceptions=True)
        except TimeoutError:
            raise PublishError(
                f"RabbitMQ at {publisher.destination} confirmed nothing for {publisher.timeout}s"
            ) from None
        for message, result in zip(messages, results, strict=True):
            if isinstance(result, spec.Basic.Ack):
                continue
            if isinstance(result, aio_pika.exceptions.PublishError):  # returned: unroutable
                raise UnroutableMessage(
                    publisher.destination, message.event_id, publisher.exchange, message.topic
                )
            refusal = refused(result, publisher.url, publisher.exchange)
            if refusal is not None:
                raise refusal
            raise PublishError(
                f"RabbitMQ at {publisher.destination} did not confirm event {message.event_id}:"
                f" {result!r}"
            )

    def fail(self, reason: str) -> None:
        for confirmed in self._pending:
            confirmed.cancel()


def _message(m: Message) -> aio_pika.Message:
    correlation = m.headers.get(CORRELATION_ID)
    return aio_pika.Message(
        m.body,
        headers=m.headers,  # type: ignore[arg-type]
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=m.event_id,
        # A correlation id longer than the property allows travels in the headers only.
        correlation_id=correlation if correlation and len(correlation.encode()) <= 255 else None,
        type=m.headers[EVENT_TYPE],
        app_id="facta",
    )


class RabbitMQPublisher:
    """Publishes to a topic exchange with publisher confirms, ``mandatory``.

    ``url`` is an AMQP URL (``amqp://guest:guest@127.0.0.1:5672/``); ``exchange`` (declared
    durable if missing); ``timeout`` seconds to wait for a batch's confirms before the relay
    treats the connection as broken; ``name`` shows in the broker's connection list;
    ``unroutable``: ``fail`` (the default) makes a message that no queue takes an error that
    stops the relay before it, ``drop`` publishes without ``mandatory`` and lets the broker
    drop such messages, which are then lost to every consumer. ``public_api``: publish
    through aio-pika's public API even where the fast path could run (as the environment
    variable ``FACTA_RELAY_PUBLIC_API`` does).
    """

    OPTIONS = ("exchange", "timeout", "name", "unroutable")

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "facta",
        timeout: float | str = 30.0,
        name: str = "facta-relay",
        unroutable: str = "fail",
        public_api: bool = False,
    ) -> None:
        if not exchange:
            raise ValueError("the exchange name must not be empty")
        if unroutable not in _UNROUTABLE:
            raise ValueError(f"unroutable must be fail or drop, not {unroutable!r}")
        self.url = url
        self.exchange = exchange
        self.timeout = float(timeout)
        self.name = name
        self.unroutable = unroutable
        self.public_api = public_api
        self.fast_path: bool | None = None
        """Whether the last connection publishes on the fast path (None: not connected yet)."""
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._sender: _aiormq.FastChannel | _PublicChannel | None = None

    @property
    def destination(self) -> str:
        return _destination(self.url, self.exchange)

    @property
    def is_connected(self) -> bool:
        return self._sender is not None and self._sender.is_open

    async def connect(self) -> None:
        # A plain (not robust) connection: after a drop the relay itself reconnects and
        # resends from its checkpoint, which is what keeps the order within a stream.
        mandatory = self.unroutable == "fail"
        try:
            self._connection = await aio_pika.connect(
                self.url, timeout=self.timeout, client_properties={"connection_name": self.name}
            )
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await channel.declare_exchange(
                self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            underlay = await channel.get_underlay_channel()
            fast = (
                not self.public_api
                and isinstance(underlay, aiormq.Channel)
                and _fastpath.refusal("aiormq", underlay, _aiormq.NEEDS) is None
            )
            if fast:
                assert isinstance(underlay, aiormq.Channel)
                self._sender = _aiormq.FastChannel(
                    underlay,
                    self.exchange,
                    mandatory=mandatory,
                    destination=self.destination,
                    timeout=self.timeout,
                    on_close=self._closed_error,
                )
            else:
                self._sender = _PublicChannel(
                    channel, exchange, mandatory=mandatory, publisher=self
                )
            self.fast_path = fast
        except _CONNECT_ERRORS as exc:
            await self.close()
            refusal = refused(exc, self.url, self.exchange)
            if refusal is not None:
                raise refusal from exc
            raise PublishError(
                f"cannot connect to RabbitMQ at {self.destination}: {exc!r}"
            ) from exc
        if not mandatory:
            log.info(
                "relay to %s: unroutable=drop, messages no queue takes are dropped",
                self.destination,
            )

    def _closed_error(self, reason: BaseException | None) -> PublishError:
        """What the unconfirmed batches of a channel that closed for ``reason`` fail with."""
        refusal = refused(reason, self.url, self.exchange)
        if refusal is not None:
            return refusal
        return PublishError(f"the channel to RabbitMQ at {self.destination} closed: {reason!r}")

    async def publish(self, messages: Sequence[Message]) -> Awaitable[None]:
        sender = self._sender
        if sender is None or not sender.is_open:
            raise PublishError(f"not connected to RabbitMQ at {self.destination}")
        return await sender.publish(messages)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.fail(f"the connection to RabbitMQ at {self.destination} was closed")
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
