"""The RabbitMQ publisher's fast path, on aiormq's channel internals. Internal.

It runs only with the aiormq version in :data:`facta.relay._fastpath.CHECKED_VERSIONS` and
every attribute in :data:`NEEDS` present; otherwise the publisher goes through aio-pika's
public API (see :mod:`facta.relay.rabbitmq`).

Why: aio-pika's ``Exchange.publish`` builds a message object, takes the channel's lock and
waits for the socket once per message, and aiormq settles publisher confirms with one future
and event-loop callbacks per message; at thousands of messages a second that costs the relay
more CPU than everything else. Here a batch's frames (:mod:`facta.relay._amqp`) go out in one
write under consecutive delivery tags, and the broker's confirms, which RabbitMQ sends in
ranges (``multiple``: every tag up to this one), settle whole batches.

What it uses of aiormq's ``Channel``: ``lock``, ``delivery_tag``, ``write_queue`` and
``number`` to queue a batch's frames under its delivery tags; ``max_content_size`` to split
bodies; ``closing`` to fail what is unconfirmed when the channel closes; and the handlers its
reader awaits for every ack, nack and return, ``_on_confirm_frame`` and ``_on_return_frame``,
replaced here, with ``_get_frame`` and ``_read_content`` to take a returned message's
content off the channel's frame queue; plus ``aiormq.abc.ChannelFrame``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiormq
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.header import ContentHeader

from facta.relay import _amqp
from facta.relay.message import Message
from facta.relay.publisher import PublishError, UnroutableMessage

NEEDS = (
    "lock",
    "delivery_tag",
    "write_queue",
    "number",
    "max_content_size",
    "closing",
    "_on_confirm_frame",
    "_on_return_frame",
    "_get_frame",
    "_read_content",
)
"""The attributes of aiormq's Channel that the fast path uses."""


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


class Unconfirmed:
    """The batches of one channel that the broker has not confirmed yet, one future each.

    Every delivery tag is confirmed exactly once by the broker, either on its own or in a
    range; a nack fails its batch, and so does a returned (unroutable) message, which
    RabbitMQ sends before the ack of its tag.
    """

    def __init__(self, destination: str, timeout: float, exchange: str = "") -> None:
        self.destination = destination
        self.timeout = timeout
        self.exchange = exchange
        self.batches: deque[_Batch] = deque()
        self.settled = 0  # every delivery tag up to this one is confirmed
        self.singles: set[int] = set()  # tags above ``settled`` confirmed on their own

    def add(self, first: int, messages: Sequence[Message]) -> asyncio.Future[None]:
        """Track the batch published under tags ``first`` onwards; its future resolves when
        the broker confirmed all of it, or fails (PublishError) on a nack, a return, a
        timeout, or a closed channel."""
        loop = asyncio.get_running_loop()
        batch = _Batch(first, messages, loop.create_future())
        if messages:
            batch.timer = loop.call_later(self.timeout, self._expire, batch)
            self.batches.append(batch)
        else:
            batch.confirmed.set_result(None)
        return batch.confirmed

    async def on_confirm_frame(self, frame: spec.Basic.Ack | spec.Basic.Nack) -> None:
        """Settle what a ``basic.ack`` or ``basic.nack`` confirms (aiormq's channel reader
        awaits this in place of its own handler)."""
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

    def returned(self, event_id: str | None, frame: spec.Basic.Return) -> None:
        """Fail the batch of the message the broker returned (found by its message id, the
        event id): no queue took it."""
        for batch in self.batches:
            if batch.confirmed.done():
                continue
            if any(message.event_id == event_id for message in batch.messages):
                self._fail(
                    batch,
                    UnroutableMessage(
                        self.destination,
                        str(event_id),
                        frame.exchange or self.exchange,
                        frame.routing_key or "",
                    ),
                )
                return

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
                PublishError(
                    f"RabbitMQ at {self.destination} did not confirm event {message.event_id}:"
                    f" {refusal!r}"
                ),
            )
            return
        batch.remaining -= count
        if batch.remaining <= 0:
            batch.confirmed.set_result(None)
            if batch.timer is not None:
                batch.timer.cancel()

    def _expire(self, batch: _Batch) -> None:
        self._fail(
            batch,
            PublishError(f"RabbitMQ at {self.destination} confirmed nothing for {self.timeout}s"),
        )

    def _fail(self, batch: _Batch, error: PublishError) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
        if not batch.confirmed.done():
            batch.confirmed.set_exception(error)
            # The relay awaits the oldest batch and reconnects on its error; the later ones
            # fail with it and may never be awaited: no "exception never retrieved" noise.
            batch.confirmed.exception()

    def fail(self, error: str | PublishError) -> None:
        """Fail every batch not yet confirmed (the channel or the connection is gone)."""
        while self.batches:
            batch = self.batches.popleft()
            self._fail(batch, error if isinstance(error, PublishError) else PublishError(error))


class FastChannel:
    """Publishes batches on an aiormq channel in confirm mode, ``mandatory`` or not, and
    takes over the channel's confirm and return handling (see the module's docstring).

    ``on_close`` turns the reason a channel closed into the error its unconfirmed batches
    fail with.
    """

    def __init__(
        self,
        channel: aiormq.Channel,
        exchange: str,
        *,
        mandatory: bool,
        destination: str,
        timeout: float,
        on_close: Any,
    ) -> None:
        self.channel = channel
        self.encoder = _amqp.PublishEncoder(
            channel.number, exchange, channel.max_content_size, mandatory=mandatory
        )
        self.unconfirmed = Unconfirmed(destination, timeout, exchange)
        self._on_close = on_close
        # The broker's acks, nacks and returns on this channel come here instead of to
        # aiormq's one-future-per-message bookkeeping.
        setattr(channel, "_on_confirm_frame", self.unconfirmed.on_confirm_frame)  # noqa: B010
        setattr(channel, "_on_return_frame", self._on_return_frame)  # noqa: B010
        channel.closing.add_done_callback(self._closed)

    @property
    def is_open(self) -> bool:
        """Whether the channel is open."""
        return not self.channel.is_closed

    async def publish(self, messages: Sequence[Message]) -> asyncio.Future[None]:
        """Queue the frames of ``messages`` in one write; the future resolves once the
        broker confirmed them all. Raises ValueError for a message AMQP cannot carry."""
        try:
            frames = self.encoder.encode(messages)
        except _amqp.EncodeError as exc:
            raise ValueError(f"cannot publish to RabbitMQ: {exc}") from None
        channel = self.channel
        # The channel lock keeps delivery tags and frames in the same order.
        async with channel.lock:
            first = channel.delivery_tag + 1
            channel.delivery_tag += len(messages)
            confirmed = self.unconfirmed.add(first, messages)
            await channel.write_queue.put(ChannelFrame(payload=frames, should_close=False))
        return confirmed

    def fail(self, reason: str) -> None:
        """Fail every unconfirmed batch (the publisher is closing)."""
        self.unconfirmed.fail(reason)

    async def _on_return_frame(self, frame: spec.Basic.Return) -> None:
        # The returned message's header and body frames follow on the channel's queue; they
        # must be read off it, as aiormq's own handler does, before the reader goes on.
        header = await self.channel._get_frame()
        if not isinstance(header, ContentHeader):
            raise ValueError(f"expected the content header of a returned message, not {header}")
        message = await self.channel._read_content(frame, header)
        self.unconfirmed.returned(message.header.properties.message_id, frame)

    def _closed(self, closing: asyncio.Future[Any]) -> None:
        reason = None if closing.cancelled() else closing.exception()
        self.unconfirmed.fail(self._on_close(reason))
