"""The projection runner: catches projections and policies up from their checkpoints in
batches, then follows the log live.

Each batch's read-model writes and its checkpoint commit in one transaction, and the
checkpoint only moves from where the batch started while this runner holds the projection's
lease, so every event takes effect exactly once, across crashes and takeovers. Several runner
processes may run the same projections: each projection is worked on by one lease holder at a
time, and when it dies another takes over from the checkpoint once the lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from facta._ids import owner_id
from facta._retry import backoff
from facta.application import Application, EventEnvelope
from facta.codec import Codec
from facta.observability import batches, metrics
from facta.projections._target import Handler, Target
from facta.projections.errors import LeaseLost, ProjectionNotFound
from facta.projections.policy import PolicyContext
from facta.projections.projection import Projection
from facta.projections.session import Session
from facta.projections.status import DeadLetter, RebuildProgress
from facta.store.base import Position, RecordedEvent
from facta.store.engine import Engine
from facta.store.read_models import FAILED, Batch, Failure, SlotRow, Unit, Worker

log = logging.getLogger("facta.projections")

ProgressCallback = Callable[[RebuildProgress], None]


class _Stopped(Exception):
    """The projection failed and stopped; its error is recorded in its slot."""


SKIPPED_CHECKPOINT_EVERY = 0.2
"""Seconds a runner may hold, unwritten, a checkpoint that only passed events of other types
(a crash costs re-reading them; ``ReadStore.wait_for`` sees them that much later)."""

FOLLOW_PAUSE = 0.005
"""Seconds a following runner pauses after a short page before it reads on. Under a steady
stream of appends every commit would wake it for a page of a few events (on PostgreSQL three
queries each time: the page, an empty page, the head); paused, it takes what several commits
wrote in one page. The price: at most this much more lag."""


class ProjectionRunner:
    """Runs projections and policies against ``store`` (their read models in its database).

    ``app`` is needed for policies (they execute commands through it); ``codec`` decodes
    events (default: the app's). ``batch_size`` events are read, handled and committed at a
    time. ``lease_ttl`` seconds after this process dies another runner takes its projections
    over. ``owner`` names this runner in the status (default: host, pid and a random part).
    """

    def __init__(
        self,
        store: Engine,
        handlers: Sequence[Handler],
        *,
        app: Application | None = None,
        codec: Codec | None = None,
        batch_size: int = 1000,
        lease_ttl: float = 10.0,
        poll_interval: float = 1.0,
        owner: str | None = None,
    ) -> None:
        if not 1 <= batch_size <= 100_000:
            raise ValueError(f"batch_size must be 1 to 100000, not {batch_size}")
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl must be positive, not {lease_ttl}")
        self.store = store
        self.app = app
        self.codec = codec or (app.codec if app is not None else Codec())
        self.batch_size = batch_size
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.owner = owner or owner_id()
        self.backend = store.read_models
        self.events = store.events
        self._targets: dict[str, Target] = {}
        for handler in handlers:
            target = Target(handler)
            if target.name in self._targets:
                raise ValueError(f"two handlers are named {target.name!r}")
            if target.policy and app is None:
                raise ValueError(f"policy {target.name!r} needs an Application (app=...)")
            for kind in type(handler).event_types:
                self.codec.register(kind)
            self._targets[target.name] = target
        self.waiting: dict[str, str] = {}
        """Why a projection is not being worked on by this runner (held elsewhere, failed)."""

    # -- public ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Work on every projection and policy until cancelled; releases the leases on exit."""
        tasks = [asyncio.create_task(self._work(t)) for t in self._targets.values()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def catch_up(self, *, until: Position | None = None) -> None:
        """Bring every projection and policy this runner can hold up to the log's head once,
        then return (for scripts and tests; a service uses ``run``). With ``until``, wait
        for the log to reach that position first (on PostgreSQL an event becomes visible
        only once every older transaction in the cluster has ended)."""
        for target in self._targets.values():
            worker = await self.backend.worker()
            slot: SlotRow | None = None
            try:
                claimed = await worker.claim(
                    target.name, target.version, target.spec, self.owner, self.lease_ttl
                )
                if isinstance(claimed, str):
                    self.waiting[target.name] = claimed
                    continue
                slot = claimed
                await self._drive(target, worker, slot, follow=False, until=until)
            except LeaseLost as exc:
                self.waiting[target.name] = str(exc)
            except _Stopped:
                pass
            finally:
                if slot is not None:
                    await worker.release(slot, self.owner)
                await worker.close()

    async def rebuild(self, name: str, *, progress: ProgressCallback | None = None) -> None:
        """Rebuild projection ``name`` from the start of the log into new storage while the
        current one keeps answering, then switch to it. ``progress`` is called after each
        batch (and once with ``done=True``). Raises ProjectionNotFound for an unknown name,
        ValueError for a policy, and the recorded error if a handler fails (the new storage
        is then left failed beside the old one, which keeps answering).
        """
        target = self._targets.get(name)
        if target is None:
            raise ProjectionNotFound(name)
        if target.policy:
            raise ValueError(f"{name!r} is a policy: policies are not rebuilt")
        owner = f"{self.owner}/rebuild"
        worker = await self.backend.worker()
        slot = await worker.new_slot(name, target.version, target.spec, owner, self.lease_ttl)
        try:
            await self._drive(target, worker, slot, follow=False, progress=progress)
        except _Stopped:
            failed = await self.backend.slots(name)
            row = next((r for r in failed if r.slot == slot.slot), None)
            raise RuntimeError(
                f"rebuild of {name!r} failed at {row.error_position if row else '?'}:"
                f" {row.error if row else '?'}"
            ) from None
        finally:
            await worker.release(slot, owner)
            await worker.close()

    async def build_inline(self, name: str, *, progress: ProgressCallback | None = None) -> str:
        """Bring the storage of projection ``name``'s version up to the head of the log (built
        beside another version's, then switched to) and hand it to inline maintenance.

        Returns "" when that is done, else why this runner cannot do it now: another process
        holds it (it is building it), or it is maintained inline already. Safe from several
        processes at once: one builds, the others wait for it. A build that stopped at a
        handler error is tried once more from where it stopped (the handler may have been
        fixed). Raises ProjectionNotFound for an unknown name, and RuntimeError when a handler
        fails.
        """
        target = self._targets.get(name)
        if target is None:
            raise ProjectionNotFound(name)
        worker = await self.backend.worker()
        slot: SlotRow | None = None
        try:
            claimed = await worker.claim(
                name, target.version, target.spec, self.owner, self.lease_ttl, downgrade=True
            )
            if isinstance(claimed, str) and any(
                r.version == target.version and r.state == "failed"
                for r in await self.backend.slots(name)
            ):
                await self.backend.restart(name)
                claimed = await worker.claim(
                    name, target.version, target.spec, self.owner, self.lease_ttl, downgrade=True
                )
            if isinstance(claimed, str):
                return claimed
            slot = claimed
            await self._drive(target, worker, slot, follow=False, progress=progress)
            # Still held: nobody else works on it between the catch-up and the hand-over.
            await self.backend.mark_inline(name)
            return ""
        except _Stopped as stopped:
            raise RuntimeError(f"projection {name!r} failed: {stopped}") from None
        finally:
            if slot is not None:
                await worker.release(slot, self.owner)
            await worker.close()

    async def close(self) -> None:
        """Nothing to release: each worker's connection is closed when its work ends, and
        the rest are the engine's (closed with it)."""

    # -- the work loop ---------------------------------------------------------------------

    async def _work(self, target: Target) -> None:
        failures = 0
        worker: Worker | None = None
        slot: SlotRow | None = None
        try:
            while True:
                try:
                    if worker is None:
                        worker = await self.backend.worker()
                    claimed = await worker.claim(
                        target.name, target.version, target.spec, self.owner, self.lease_ttl
                    )
                    if isinstance(claimed, str):
                        self.waiting[target.name] = claimed
                        if claimed.startswith(FAILED):  # stopped: say so until restarted
                            metrics.projection_stopped(target.name, True)
                        await asyncio.sleep(self.poll_interval)
                        continue
                    self.waiting.pop(target.name, None)
                    metrics.projection_stopped(target.name, False)
                    slot, failures = claimed, 0
                    await self._drive(target, worker, slot, follow=True)
                except (LeaseLost, _Stopped):
                    slot = None
                except Exception as exc:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # cancelled while cleaning up: do not swallow the cancellation
                    failures += 1
                    delay = backoff(failures, cap=30.0)
                    log.exception("projection %s: %s; retrying in %.1fs", target.name, exc, delay)
                    self.waiting[target.name] = f"retrying after {type(exc).__name__}: {exc}"
                    if worker is not None:
                        with contextlib.suppress(Exception):
                            await worker.close()
                    worker, slot = None, None
                    await asyncio.sleep(delay)
        finally:
            if worker is not None:
                with contextlib.suppress(Exception):
                    if slot is not None:
                        await worker.release(slot, self.owner)
                    await worker.close()

    async def _page(
        self, after: Position, wanted: frozenset[str]
    ) -> tuple[bool, Position, list[RecordedEvent]]:
        """(more may follow, the position the page reaches, its events of ``wanted`` types).

        The log is read whole and filtered here, so the checkpoint moves past events of
        other types too (no rescans, no separate look at the head), and a page of log
        positions costs the same whatever the types, where a database filter on several
        types may sort everything after the checkpoint for each page (PostgreSQL without
        fresh statistics does).
        """
        # Without waiting for held-back events: the runner reads again when woken, and under
        # steady appends a wait would poll the server for as long as one is in flight.
        page = await self.events.read_all(
            after=after, limit=self.batch_size, wait_for_held_back=False
        )
        end = page[-1].position if page else after
        return len(page) == self.batch_size, end, [r for r in page if r.type in wanted]

    async def _drive(
        self,
        target: Target,
        worker: Worker,
        slot: SlotRow,
        *,
        follow: bool,
        progress: ProgressCallback | None = None,
        until: Position | None = None,
    ) -> None:
        """Work on a held slot: catch up (to ``until`` at least), switch to it if it is a
        rebuild, then (with ``follow``) wait for new events, forever."""
        owner = slot.owner or self.owner
        if slot.fresh and target.has_setup:
            await self._setup(target, worker, slot)
        position = slot.position
        started_head = await self.events.head()
        handled = 0
        renew_every = self.lease_ttl / 3
        renew_at = time.monotonic() + renew_every
        wait = 0.01
        wanted = frozenset(target.types)
        unsaved = False  # passed events of other types without writing the checkpoint
        save_by = time.monotonic() + SKIPPED_CHECKPOINT_EVERY
        pending: asyncio.Future[tuple[bool, Position, list[RecordedEvent]]] | None
        pending = asyncio.ensure_future(self._page(position, wanted))
        try:
            while True:
                assert pending is not None
                full, goal, records = await pending
                pending = None
                if full:  # read the next page while this one is handled
                    pending = asyncio.ensure_future(self._page(goal, wanted))
                moved = goal != position
                if moved and not records and time.monotonic() < save_by:
                    # Nothing to handle: move on, and write the checkpoint later. On a busy
                    # log, a write per page would take the database's writer from the
                    # appends (SQLite has one, and each commit is an fsync).
                    position, unsaved = goal, True
                elif moved or (unsaved and time.monotonic() >= save_by):
                    unsaved = False
                    save_by = time.monotonic() + SKIPPED_CHECKPOINT_EVERY
                    behind_of = started_head if full else goal  # the lag metric's head
                    with batches.projection_batch(target.name, records, goal, behind_of):
                        reached = await self._apply(target, worker, slot, records, goal)
                    renew_at = time.monotonic() + renew_every
                    handled += len(records)
                    position = reached
                    if progress is not None:
                        progress(RebuildProgress(target.name, handled, position, started_head))
                    if reached != goal:  # a parked event: go on right after it
                        if pending is not None:
                            pending.cancel()
                        pending = asyncio.ensure_future(self._page(position, wanted))
                        continue
                if full:
                    continue
                if unsaved and (not slot.active or not follow):
                    await self._apply(target, worker, slot, [], position)  # the final checkpoint
                    unsaved = False
                if not slot.active:
                    await worker.switch(slot, owner)
                    slot.active, slot.state = True, "running"
                    log.info("projection %s: version %d is now active", target.name, slot.version)
                if not follow and (until is None or position >= until):
                    if progress is not None:
                        progress(
                            RebuildProgress(target.name, handled, position, started_head, True)
                        )
                    return
                if time.monotonic() >= renew_at:
                    if not await worker.renew(slot, owner, self.lease_ttl):
                        raise LeaseLost(slot.name, slot.slot)
                    renew_at = time.monotonic() + renew_every
                if moved:
                    wait = 0.01
                    if follow:  # a short page: let a few more commits land first
                        await asyncio.sleep(FOLLOW_PAUSE)
                else:
                    longest = min(wait, renew_every)
                    if unsaved:
                        longest = max(0.0, min(longest, save_by - time.monotonic()))
                    await self.events.wait_for_events(position, longest)
                    wait = min(wait * 2, 1.0)
                pending = asyncio.ensure_future(self._page(position, wanted))
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    async def _setup(self, target: Target, worker: Worker, slot: SlotRow) -> None:
        assert isinstance(target.handler, Projection)
        unit = worker.unit(slot, target.spec)
        try:
            await unit.begin()
            session = Session(unit, target.spec, self._table(slot))
            await target.handler.setup(session)
            await unit.commit(session._fill(Batch(slot.position)))
        except BaseException:
            await unit.rollback()
            raise

    def _table(self, slot: SlotRow) -> str:
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
            session: Session[Any] = Session(unit, target.spec, self._table(slot))
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

    async def _apply(
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
        raise _Stopped(text)
