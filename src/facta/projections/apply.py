"""How a runner handles one batch of events and commits it: decode, handle (with retries of
what the handler declares transient), and commit the documents with the checkpoint; a failing
event is parked (and the batch goes on after it) or stops the projection, the events before
it committed first."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from facta._retry import backoff
from facta.application import Application
from facta.codec import Codec
from facta.observability import metrics
from facta.projections._target import Target
from facta.projections.policy import PolicyContext
from facta.projections.projection import Projection
from facta.projections.session import Session
from facta.projections.status import DeadLetter
from facta.results import EventEnvelope
from facta.store.base import Position, RecordedEvent
from facta.store.read_models import Batch, Failure, ReadModels, SlotRow, Unit, Worker

log = logging.getLogger("facta.projections")


class Stopped(Exception):
    """The projection failed and stopped; its error is recorded in its slot."""


class Applier:
    """Handles and commits batches for a runner: events decoded with ``codec``, policies'
    commands executed through ``app``, documents in ``backend``."""

    def __init__(self, backend: ReadModels, codec: Codec, app: Application | None) -> None:
        self.backend = backend
        self.codec = codec
        self.app = app

    async def setup(self, target: Target, worker: Worker, slot: SlotRow) -> None:
        assert isinstance(target.handler, Projection)
        unit = worker.unit(slot, target.spec)
        try:
            await unit.begin()
            session = Session(unit, target.spec, self.table(slot))
            await target.handler.setup(session)
            await unit.commit(session._fill(Batch(slot.position)))
        except BaseException:
            await unit.rollback()
            raise

    def table(self, slot: SlotRow) -> str:
        return self.backend.table(slot.name, slot.slot)

    # -- batches ---------------------------------------------------------------------------

    async def _handle(
        self, target: Target, unit: Unit, slot: SlotRow, records: Sequence[RecordedEvent]
    ) -> tuple[Session[Any] | None, int, int, BaseException | None]:
        """Handle ``records`` in ``unit``: (session, events handled, failing index, error)."""
        decode = self.codec.decode
        envelopes: list[tuple[int, EventEnvelope[Any]]] = []  # any event class the codec reads
        failed_at, error = len(records), None
        for index, record in enumerate(records):
            try:
                event = decode(record)
            except Exception as exc:
                failed_at, error = index, exc
                break
            if event is not None:
                envelopes.append((index, EventEnvelope(event, record)))
        handler = target.handler
        if isinstance(handler, Projection):
            session: Session[Any] = Session(unit, target.spec, self.table(slot))
            if target.uses_connection:
                await unit.begin()
            if target.keyed:
                key_of = handler.key_of
                await session._prefetch(key for _, e in envelopes if (key := key_of(e)) is not None)
            handle = handler.handle
            for index, envelope in envelopes:
                try:
                    await handle(envelope, session)
                except Exception as exc:
                    return session, index, index, exc
            return session, len(envelopes), failed_at, error
        assert self.app is not None
        for index, envelope in envelopes:
            try:
                await handler.handle(envelope, PolicyContext(self.app, target.name, envelope))
            except Exception as exc:
                return None, index, index, exc
        return None, len(envelopes), failed_at, error

    @staticmethod
    def _batch(
        session: Session[Any] | None,
        position: Position,
        records: Sequence[RecordedEvent],
        handled: int,
    ) -> Batch:
        batch = Batch(position, checkpoint_at=records[-1].recorded_at if records else None)
        batch.handled = handled
        return batch if session is None else session._fill(batch)

    async def apply(
        self,
        target: Target,
        worker: Worker,
        slot: SlotRow,
        records: Sequence[RecordedEvent],
        position: Position,
    ) -> Position:
        """Handle and commit one batch; returns the checkpoint it reached."""
        attempt = 0
        while True:
            unit = worker.unit(slot, target.spec)
            try:
                session, handled, failed_at, error = await self._handle(target, unit, slot, records)
                if error is None:
                    await unit.commit(self._batch(session, position, records, handled))
                    return position
            except BaseException:
                await unit.rollback()
                raise
            await unit.rollback()
            if isinstance(error, target.retried) and attempt < target.retries:
                attempt += 1
                log.warning(
                    "projection %s: %r at %s, retry %d",
                    target.name,
                    error,
                    records[failed_at].position,
                    attempt,
                )
                await asyncio.sleep(backoff(attempt))
                continue
            if target.parks and isinstance(error, target.transient):
                # An outage is not the event's fault: never park for it (parking skips the
                # event for good); the work loop tries again from the checkpoint later.
                raise error
            return await self._fail(target, worker, slot, records, failed_at, error)

    async def retry(
        self, target: Target, worker: Worker, slot: SlotRow, record: RecordedEvent
    ) -> BaseException | None:
        """Handle one parked ``record`` again on ``slot`` (held by this worker's owner),
        committing its documents with the checkpoint left where it is; returns the error
        when the handler fails again (nothing is written)."""
        unit = worker.unit(slot, target.spec)
        try:
            session, handled, _, error = await self._handle(target, unit, slot, [record])
            if error is not None:
                await unit.rollback()
                return error
            await unit.commit(self._batch(session, slot.position, [], handled))
        except BaseException:
            await unit.rollback()
            raise
        return None

    async def _fail(
        self,
        target: Target,
        worker: Worker,
        slot: SlotRow,
        records: Sequence[RecordedEvent],
        index: int,
        error: BaseException,
    ) -> Position:
        """Commit the events before the failing one, then park it or stop at it."""
        while True:
            before = records[:index]
            unit = worker.unit(slot, target.spec)
            session, handled, again_at, again = await self._handle(target, unit, slot, before)
            if again is None:
                break
            await unit.rollback()
            index, error = again_at, again  # the handler is not deterministic: stop earlier
        record = records[index]
        text = f"{type(error).__name__}: {error}"[:2000]
        try:
            if type(target.handler).on_error == "park":
                batch = self._batch(session, record.position, before, handled)
                batch.parked.append(
                    DeadLetter(
                        target.name,
                        slot.slot,
                        record.event_id,
                        str(record.position),
                        record.stream_id,
                        record.type,
                        text,
                        time.time(),
                    )
                )
                await unit.commit(batch)
                metrics.projection_parked(target.name)
                log.warning("projection %s: parked %s: %s", target.name, record.position, text)
                return record.position
            position = before[-1].position if before else slot.position
            batch = self._batch(session, position, before, handled)
            batch.failure = Failure(record.event_id, str(record.position), text)
            await unit.commit(batch)
        except BaseException:
            await unit.rollback()
            raise
        metrics.projection_stopped(target.name, True)
        log.error("projection %s stopped at %s: %s", target.name, record.position, text)
        raise Stopped(text)
