"""What every consumer of relayed events does, whatever the broker: rebuild the envelope,
drop repeats by event id, run the handler with retries, and decide when a message is poison.

A broker delivers at least once (RabbitMQ cannot de-duplicate a relay's resend; JetStream
only within its duplicate window; any broker redelivers what was not acked), so a consumer
remembers the ids it has handled. :class:`MemoryDeduplicator` remembers the last ``capacity``
ids of this process. For exactly-once effects across restarts, implement
:class:`Deduplicator` on the service's own database and record the id in the same
transaction as the handler's writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

import msgspec

from facta.codec import Codec
from facta.errors import EventDecodeError, UnknownEventType
from facta.relay.message import EnvelopeError, to_recorded
from facta.results import EventEnvelope

log = logging.getLogger("facta.relay")

Handler = Callable[[EventEnvelope[Any]], Awaitable[None]]
"""A consumer's handler: receives the envelope a projection or policy receives (the decoded
event and its RecordedEvent). Without a codec, ``event`` is the JSON object as a dict."""


class Deduplicator(Protocol):
    """Remembers which event ids a consumer has handled."""

    async def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was handled already."""
        ...

    async def remember(self, event_id: str) -> None:
        """Record that ``event_id`` was handled (after the handler succeeded)."""
        ...


class MemoryDeduplicator:
    """The last ``capacity`` handled ids of this process, forgetting the oldest first.

    Repeats come soon after the original (a resend after a relay restart, a redelivery after
    a dropped connection), so a window of recent ids catches them; size it above the number
    of events a relay may have in flight plus the consumer's prefetch.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    async def seen(self, event_id: str) -> bool:
        return event_id in self._ids

    async def remember(self, event_id: str) -> None:
        ids = self._ids
        ids[event_id] = None
        if len(ids) > self.capacity:
            del ids[next(iter(ids))]


class DeadLetter(NamedTuple):
    """Why a message goes to the dead-letter queue: the last error and the tries it had."""

    error: str
    tries: int


def _reraise_cancellation() -> None:
    """Inside an ``except`` for a broker error: raise CancelledError if this task is being
    cancelled. A driver's ``wait_for`` may turn a cancellation into a TimeoutError, and a
    reconnect loop must not swallow it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Dispatcher:
    """Turns one delivered message into at most one successful handler call.

    ``max_tries`` bounds the calls for one message (with ``retry_delay`` doubling between
    them); after the last failure, :meth:`deliver` returns a DeadLetter and the caller moves
    the message to its dead-letter queue (its id counts as handled from then on, so a
    repeat is not retried). A message without a valid envelope is dead at once.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        codec: Codec | None = None,
        deduplicator: Deduplicator | None = None,
        max_tries: int = 5,
        retry_delay: float = 0.05,
    ) -> None:
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, not {max_tries}")
        self.handler = handler
        self.codec = codec
        self.deduplicator = deduplicator or MemoryDeduplicator()
        self.max_tries = max_tries
        self.retry_delay = retry_delay
        self.handled = 0
        self.duplicates = 0
        self.dead = 0

    async def deliver(
        self,
        body: bytes,
        headers: dict[str, Any],
        *,
        keep_alive: Callable[[], Awaitable[None]] | None = None,
    ) -> DeadLetter | None:
        """Handle one message; None when it may be acked (handled now or before), else why it
        is poison. ``keep_alive`` is awaited before each retry (JetStream's in-progress ack)."""
        try:
            recorded = to_recorded(body, headers)
            event = (
                self.codec.decode(recorded) if self.codec is not None else msgspec.json.decode(body)
            )
        except (EnvelopeError, UnknownEventType, EventDecodeError, msgspec.DecodeError) as exc:
            self.dead += 1
            return DeadLetter(f"{type(exc).__name__}: {exc}", 0)
        if await self.deduplicator.seen(recorded.event_id):
            self.duplicates += 1
            return None
        if event is None:  # a type the codec deprecates: nothing to handle
            await self.deduplicator.remember(recorded.event_id)
            return None
        envelope: EventEnvelope[Any] = EventEnvelope(event, recorded)
        tries = 0
        while True:
            tries += 1
            try:
                await self.handler(envelope)
            except Exception as exc:
                if tries >= self.max_tries:
                    self.dead += 1
                    log.error(
                        "event %s of %s failed %d times, dead-lettered: %r",
                        recorded.event_id,
                        recorded.stream_id,
                        tries,
                        exc,
                    )
                    # Parked: a repeat of it is not retried again (the dead-letter queue
                    # has it; replaying it from there is an operator's decision).
                    await self.deduplicator.remember(recorded.event_id)
                    return DeadLetter(f"{type(exc).__name__}: {exc}", tries)
                if keep_alive is not None:
                    await keep_alive()
                await asyncio.sleep(self.retry_delay * 2 ** (tries - 1))
                continue
            await self.deduplicator.remember(recorded.event_id)
            self.handled += 1
            return None
