"""The relay: publishes the global log to a broker from a checkpoint. The log is the outbox.

It reads the log in batches after its checkpoint, hands each batch to the publisher in log
order, and keeps up to ``max_in_flight`` events sent but not yet confirmed (a pipeline: the
next batch goes out while the broker confirms the last). The checkpoint only moves past a
batch once the broker confirmed it and every batch before it, so a crash at any moment
resends from the checkpoint: at least once, never a gap. One relay per destination holds the
lease (see :mod:`facta.store.checkpoints`); others wait and take over from the checkpoint.

Order: a publisher sends on one connection, so the broker receives each connection's
messages as a prefix of what was sent; on any failure the relay drops the connection,
reconnects (with back-off, by itself) and resends everything after the last confirmed batch,
so within a stream a consumer sees versions in order, with repeats to drop by event id. (The
one exception: a broker that refuses one message — a RabbitMQ ``basic.nack`` — yet accepts
later ones on the same connection; the resend then brings the refused one after them.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from facta._fleet import Fleet
from facta._ids import owner_id
from facta._retry import backoff
from facta.codec import Codec
from facta.errors import RelayLeaseLost, StoreUnavailable
from facta.observability import batches
from facta.relay.consumer import _reraise_cancellation
from facta.relay.message import to_messages
from facta.relay.publisher import BrokerRefused, Publisher, PublishError
from facta.store.base import Position, RecordedEvent
from facta.store.checkpoints import CheckpointStore
from facta.store.engine import Engine
from facta.store.read_models import MAX_PARTITIONS, partition_of

log = logging.getLogger("facta.relay")

_BROKER_ERRORS = (PublishError, ConnectionError, OSError, TimeoutError, StoreUnavailable)


@dataclass(slots=True)
class RelayStatus:
    """What a running relay is doing (read it for progress and health)."""

    name: str
    position: Position | None = None  # the last confirmed position (the checkpoint)
    published: int = 0  # events confirmed by the broker since this relay started
    connected: bool = False
    holding: bool = False  # holds the destination's lease
    reconnects: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class _Batch:
    confirmed: Awaitable[None] | None  # None: nothing to publish (filtered or deprecated)
    position: Position  # the last event of the batch: the checkpoint once confirmed
    events: int
    messages: int


class Relay:
    """Publishes ``store``'s log to ``publisher``, from a checkpoint, at least once.

    ``codec``: publish the current shape of each event (upcast; see
    :mod:`facta.relay.message`); without one, the stored data as it is. ``name`` names the
    checkpoint and lease (default: the publisher's destination). ``batch_size`` events are
    read and sent at a time, with at most ``max_in_flight`` unconfirmed. ``categories`` and
    ``types`` restrict what is published. ``lease_ttl``: seconds after which another relay may
    take over a silent one (on every engine: the lease is a row).

    ``partitions`` and ``partition``: publish only the streams of one partition of the log
    (by the same stable hash of the stream id as partitioned projections), with a checkpoint
    and lease of its own (named ``NAME#P/N``). N relays, one per partition, then publish in
    parallel on N connections, each stream's events still in order (a stream is in one
    partition); they may run in one process or be spread over several. With a ``fleet``
    (see :class:`facta.relay.fleet.RelayFleet`, which makes them), the partitions are shared
    evenly by every process of the fleet: this relay waits while its process holds its
    share, and hands its partition over (every batch confirmed and recorded, then the lease
    released) when a process joins.
    """

    def __init__(
        self,
        store: Engine,
        publisher: Publisher,
        *,
        codec: Codec | None = None,
        name: str | None = None,
        batch_size: int = 500,
        max_in_flight: int = 5000,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        lease_ttl: float = 10.0,
        checkpoint_interval: float = 0.05,
        owner: str | None = None,
        checkpoints: CheckpointStore | None = None,
        partitions: int = 1,
        partition: int = 0,
        fleet: Fleet | None = None,
    ) -> None:
        if not 1 <= partitions <= MAX_PARTITIONS or not 0 <= partition < partitions:
            raise ValueError(
                f"partition {partition} of {partitions}: partitions must be 1 to"
                f" {MAX_PARTITIONS} and the partition one of them"
            )
        if not 1 <= batch_size <= 100_000:
            raise ValueError(f"batch_size must be 1 to 100000, not {batch_size}")
        if max_in_flight < batch_size:
            raise ValueError(f"max_in_flight ({max_in_flight}) must be at least the batch size")
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl must be positive, not {lease_ttl}")
        self.store = store
        self.publisher = publisher
        self.codec = codec
        base = name or publisher.destination
        self.name = base if partitions == 1 else f"{base}#{partition}/{partitions}"
        self.fleet = fleet
        self.fleet_name = f"relay:{base}"
        """The name the fleet's processes share it under (their heartbeats)."""
        self.partitions = partitions
        self.partition = partition
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.categories = list(categories) if categories else None
        self.types = list(types) if types else None
        self.lease_ttl = lease_ttl
        self.checkpoint_interval = checkpoint_interval
        self.owner = owner or owner_id()
        self.checkpoints = checkpoints or store.relay_checkpoints
        self.status = RelayStatus(self.name)

    async def run(self) -> None:
        """Publish until cancelled: wait for the lease, then follow the log live, reconnecting
        with back-off after a broker failure that may pass (a refused or dropped connection,
        a timeout). Raises for what a retry cannot fix: BrokerRefused (wrong credentials, no
        permission, a missing virtual host or stream, a message no queue takes) and an event
        the codec cannot bring to its current shape."""
        await self._run(stop_at=None)

    async def catch_up(self) -> Position:
        """Publish everything up to the log's head as of now, then return the checkpoint
        (for scripts, tests and benchmarks; a service uses ``run``)."""
        head = await self.store.head()
        return await self._run(stop_at=head)

    async def close(self) -> None:
        """Nothing to release: the checkpoint store is the engine's (closed with it)."""

    # -- the loop --------------------------------------------------------------------------

    async def _run(self, stop_at: Position | None) -> Position:
        status = self.status
        failures = 0
        try:
            while True:
                start = await self._acquire()
                try:
                    return await self._publish_from(start, stop_at)
                except RelayLeaseLost:
                    log.warning("relay %s lost its lease; waiting to take it again", self.name)
                    status.holding = False
                    self._gave_up()
                except _HandOver:
                    status.holding = False
                    self._gave_up()
                    with contextlib.suppress(StoreUnavailable):  # the lease runs out anyway
                        await asyncio.shield(self.checkpoints.release(self.name, self.owner))
                    log.info("relay %s: handed over to another process", self.name)
                except BrokerRefused as exc:
                    status.last_error = str(exc)
                    await self._record_error(status.last_error)
                    raise
                except _BROKER_ERRORS as exc:
                    _reraise_cancellation()
                    failures = failures + 1 if status.connected is False else 1
                    status.reconnects += 1
                    status.last_error = str(exc) or repr(exc)
                    await self._record_error(status.last_error)
                    delay = backoff(failures)
                    log.warning(
                        "relay %s: %s; reconnecting in %.2fs", self.name, status.last_error, delay
                    )
                    await asyncio.sleep(delay)
                finally:
                    status.connected = False
                    await self.publisher.close()
        finally:
            self._gave_up()
            if status.holding:
                status.holding = False
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.checkpoints.release(self.name, self.owner))

    def _gave_up(self) -> None:
        if self.fleet is not None:
            self.fleet.gave_up(self.fleet_name, self.partition)

    def _must_hand_over(self) -> bool:
        fleet = self.fleet
        return fleet is not None and fleet.must_hand_over(self.fleet_name, self.partition)

    async def _record_error(self, error: str) -> None:
        """Keep ``error`` in the relay's row for operators; a store that fails too (it may be
        what failed) only costs the record."""
        try:
            await asyncio.shield(self.checkpoints.record_error(self.name, error))
        except Exception as exc:
            log.debug("relay %s could not record its error: %r", self.name, exc)

    async def _acquire(self) -> Position:
        """Wait for the lease; the position to start from."""
        if self.status.holding and self.status.position is not None:
            return self.status.position
        poll = min(1.0, self.lease_ttl / 4)
        fleet = self.fleet
        while True:
            if fleet is not None:
                if not fleet.may_take(self.fleet_name):  # its share is held: wait
                    await asyncio.sleep(poll)
                    continue
                # Counted before the claim: the process's other partitions see it at once.
                fleet.took(self.fleet_name, self.partition)
            row = await self.checkpoints.acquire(self.name, self.owner, self.lease_ttl)
            if row is not None:
                self.status.holding = True
                self.status.position = row.position
                log.info("relay %s holds %s from %s", self.owner, self.name, row.position)
                return row.position
            self._gave_up()
            await asyncio.sleep(poll)

    async def _publish_from(self, start: Position, stop_at: Position | None) -> Position:
        store, publisher, codec, status = self.store, self.publisher, self.codec, self.status
        await publisher.connect()
        status.connected = True
        window: deque[_Batch] = deque()
        in_flight = 0
        read_to = saved = start  # the last position read and sent; the one recorded
        saved_at = time.monotonic()
        renewed_at = saved_at
        unsaved = 0
        filtered = bool(self.categories or self.types)
        wait = 0.01
        try:
            while True:
                caught_up = False
                # A process joined the fleet: read no more, and once every batch sent is
                # confirmed and recorded, give the partition up (below).
                handing_over = self._must_hand_over()
                if handing_over:
                    caught_up = True
                elif in_flight + self.batch_size <= self.max_in_flight:
                    head = await store.head() if filtered else None
                    events = await store.read_all(
                        after=read_to,
                        limit=self.batch_size,
                        categories=self.categories,
                        types=self.types,
                        wait_for_held_back=False,  # it reads again when woken
                    )
                    if events:
                        mine = self._mine(events)
                        messages = to_messages(mine, codec)
                        with batches.relay_batch(self.name, events, events[-1].position, head):
                            confirmed = await publisher.publish(messages) if messages else None
                        read_to = events[-1].position
                        window.append(_Batch(confirmed, read_to, len(mine), len(messages)))
                        in_flight += len(mine)
                    if len(events) < self.batch_size:
                        caught_up = True
                        if head is not None and head > read_to:
                            # Nothing matching lies between the short page and that head.
                            read_to = head
                            window.append(_Batch(None, head, 0, 0))
                # Retire confirmed batches in log order: wait for the oldest when the window
                # is full or there is nothing more to read, else only take what is done.
                while window:
                    oldest = window[0]
                    if oldest.confirmed is not None:
                        if not _done(oldest.confirmed) and not (
                            caught_up or in_flight + self.batch_size > self.max_in_flight
                        ):
                            break
                        await oldest.confirmed
                    window.popleft()
                    in_flight -= oldest.events
                    status.position = oldest.position
                    status.published += oldest.events
                    unsaved += oldest.events
                now = time.monotonic()
                if (
                    status.position is not None
                    and status.position != saved
                    and (not window or now - saved_at >= self.checkpoint_interval)
                ):
                    await self.checkpoints.save(
                        self.name, self.owner, status.position, unsaved, self.lease_ttl
                    )
                    saved, saved_at, renewed_at, unsaved = status.position, now, now, 0
                if handing_over and not window:
                    raise _HandOver
                if not window and caught_up:
                    if stop_at is not None and read_to >= stop_at:
                        return read_to
                    if not publisher.is_connected:
                        raise PublishError(f"lost the connection to {publisher.destination}")
                    if now - renewed_at >= self.lease_ttl / 3:
                        await self.checkpoints.renew(self.name, self.owner, self.lease_ttl)
                        renewed_at = now
                    await store.wait_for_events(read_to, wait)
                    # Idle waits stay short enough to renew the lease in time.
                    wait = min(wait * 2, 1.0, self.lease_ttl / 4)
                else:
                    wait = 0.01
        finally:
            for batch in window:
                if isinstance(batch.confirmed, asyncio.Future):
                    batch.confirmed.cancel()
            if status.position is not None and status.position != saved:
                # Confirmed but not yet recorded: record it, so a restart resends less.
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        self.checkpoints.save(
                            self.name, self.owner, status.position, unsaved, self.lease_ttl
                        )
                    )

    def _mine(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """The events of this relay's partition."""
        if self.partitions == 1:
            return events
        n, p = self.partitions, self.partition
        return [e for e in events if partition_of(e.stream_id, n) == p]


class _HandOver(Exception):
    """This relay's process holds more than its share of the fleet's partitions: give this
    one up (it is raised with every batch confirmed and recorded)."""


def _done(awaitable: Awaitable[None]) -> bool:
    return isinstance(awaitable, asyncio.Future) and awaitable.done()
