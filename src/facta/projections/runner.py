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
from collections.abc import Sequence
from dataclasses import replace

from facta._fleet import Fleet
from facta._ids import owner_id
from facta._retry import backoff
from facta.application import Application
from facta.codec import Codec
from facta.observability import batches, metrics
from facta.projections._target import Handler, Target
from facta.projections.apply import Applier, Stopped
from facta.projections.errors import LeaseLost, ProjectionNotFound
from facta.projections.pages import SharedPages
from facta.projections.progress import Combined, ProgressCallback
from facta.projections.status import RebuildProgress
from facta.store.base import Position, RecordedEvent
from facta.store.engine import Engine
from facta.store.read_models import (
    FAILED,
    SlotRow,
    Worker,
    setting_up,
)

log = logging.getLogger("facta.projections")


class _HandOver(Exception):
    """This runner holds more than its share of a partitioned projection: give this
    partition to another runner."""


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
        self.fleet = Fleet(self.backend, self.owner, lease_ttl)
        partitions = sum(t.partitions for t in self._targets.values())
        self.pages = SharedPages(self.events, batch_size, keep=max(4, 2 * partitions))
        self.applier = Applier(self.backend, self.codec, app)
        self.waiting: dict[str, str] = {}
        """Why a projection (``name``, or ``name#partition`` for a partition of a partitioned
        one) is not being worked on by this runner (held elsewhere, failed, its share held)."""

    # -- public ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Work on every projection and policy until cancelled; releases the leases on exit.
        A partitioned one is shared with the other runners: this one holds its fair share
        of the partitions."""
        tasks = []
        for target in self._targets.values():
            if target.partitions > 1:
                beat = self.fleet.beat(target.name, target.partitions)
                tasks.append(asyncio.create_task(beat))
            for partition in range(target.partitions):
                tasks.append(asyncio.create_task(self._work(target, partition)))
        try:
            await asyncio.gather(*tasks)
        finally:
            # Cancelled, gather has cancelled them all and returns as soon as the first has
            # ended: cancelling the others again would cut short their release and leave.
            for task in tasks:
                if not task.cancelling():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def catch_up(self, *, until: Position | None = None) -> None:
        """Bring every projection and policy this runner can hold up to the log's head once,
        then return (for scripts and tests; a service uses ``run``). With ``until``, wait
        for the log to reach that position first (on PostgreSQL an event becomes visible
        only once every older transaction in the cluster has ended). Every partition of a
        partitioned one that no other runner holds is caught up, one after the other."""
        for target in self._targets.values():
            for partition in range(target.partitions):
                await self._catch_up(target, partition, until)

    async def _catch_up(self, target: Target, partition: int, until: Position | None) -> None:
        label = target.label(partition)
        worker = await self.backend.worker()
        slot: SlotRow | None = None
        try:
            claimed = await self._claim(worker, target, partition)
            if isinstance(claimed, str):
                self.waiting[label] = claimed
                return
            slot = claimed
            await self._drive(target, worker, slot, follow=False, until=until)
        except LeaseLost as exc:
            self.waiting[label] = str(exc)
        except Stopped:
            pass
        finally:
            if slot is not None:
                await worker.release(slot, self.owner)
            await worker.close()

    async def _claim(
        self, worker: Worker, target: Target, partition: int, *, downgrade: bool = False
    ) -> SlotRow | str:
        return await worker.claim(
            target.name,
            target.version,
            target.spec,
            self.owner,
            self.lease_ttl,
            downgrade=downgrade,
            partition=partition,
            partitions=target.partitions,
        )

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
        try:
            rows = await worker.new_slot(
                name,
                target.version,
                target.spec,
                owner,
                self.lease_ttl,
                partitions=target.partitions,
            )
        finally:
            await worker.close()
        if target.has_setup:  # before any partition handles an event
            worker = await self.backend.worker()
            try:
                await self.applier.setup(target, worker, rows[0])
            finally:
                await worker.close()
        for row in rows:
            row.fresh = False
        report = None if progress is None else Combined(progress, len(rows))
        try:
            async with asyncio.TaskGroup() as group:  # one partition failing stops the others
                for row in rows:
                    group.create_task(self._rebuild_partition(target, row, report))
        except* Stopped:
            failed = [r for r in await self.backend.slots(name) if r.slot == rows[0].slot]
            stopped = next((r for r in failed if r.state == "failed"), None)
            raise RuntimeError(
                f"rebuild of {name!r} failed at {stopped.error_position if stopped else '?'}:"
                f" {stopped.error if stopped else '?'}"
            ) from None

    async def _rebuild_partition(
        self, target: Target, slot: SlotRow, progress: Combined | None
    ) -> None:
        worker = await self.backend.worker()
        owner = slot.owner or self.owner
        try:
            report = None if progress is None else progress.reporter(slot.partition)
            await self._drive(target, worker, slot, follow=False, progress=report)
            while not slot.active:  # the other partitions catch up too: wait for the switch
                await asyncio.sleep(0.05)
                if await worker.switch(slot, owner):
                    slot.active = True
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
        if target.partitions > 1:
            raise ValueError(f"{name!r} has partitions: an inline projection has none")
        worker = await self.backend.worker()
        slot: SlotRow | None = None
        try:
            claimed = await self._claim(worker, target, 0, downgrade=True)
            if isinstance(claimed, str) and any(
                r.version == target.version and r.state == "failed"
                for r in await self.backend.slots(name)
            ):
                await self.backend.restart(name)
                claimed = await self._claim(worker, target, 0, downgrade=True)
            if isinstance(claimed, str):
                return claimed
            slot = claimed
            await self._drive(target, worker, slot, follow=False, progress=progress)
            # Still held: nobody else works on it between the catch-up and the hand-over.
            await self.backend.mark_inline(name)
            return ""
        except Stopped as stopped:
            raise RuntimeError(f"projection {name!r} failed: {stopped}") from None
        finally:
            if slot is not None:
                await worker.release(slot, self.owner)
            await worker.close()

    async def close(self) -> None:
        """Nothing to release: each worker's connection is closed when its work ends, and
        the rest are the engine's (closed with it)."""

    # -- the work loop ---------------------------------------------------------------------

    async def _work(self, target: Target, partition: int) -> None:
        label = target.label(partition)
        shared = target.partitions > 1
        failures = 0
        worker: Worker | None = None
        slot: SlotRow | None = None
        try:
            if shared:
                await self.fleet.counted(target.name)
            while True:
                try:
                    if shared and not self.fleet.may_take(target.name):
                        self.waiting[label] = self.fleet.waiting_reason(target.name)
                        if worker is not None:  # its share is held: no connection for this one
                            with contextlib.suppress(Exception):
                                await worker.close()
                            worker = None
                        await asyncio.sleep(self.poll_interval)
                        continue
                    if worker is None:
                        worker = await self.backend.worker()
                    # Counted before the claim. Its other partitions may have passed the share
                    # check while their connections opened: any claim beyond the share is
                    # handed back at once, below (counting before the connection would let
                    # only one partition at a time look for a free one, a second apart).
                    self.fleet.took(target.name, partition)
                    claimed = await self._claim(worker, target, partition)
                    if isinstance(claimed, str):
                        self.fleet.gave_up(target.name, partition)
                        self.waiting[label] = claimed
                        if claimed.startswith(FAILED):  # stopped: say so until restarted
                            metrics.projection_stopped(target.name, True)
                        if shared:  # a connection only while holding: N partitions x M runners
                            await _close(worker)
                            worker = None
                        await asyncio.sleep(self.poll_interval)
                        continue
                    slot, failures = claimed, 0
                    if (
                        shared
                        and not slot.fresh  # a new slot is set up first (then handed over)
                        and self.fleet.must_hand_over(target.name, partition)
                    ):
                        # Its other partitions claimed at once, while connecting: one too many.
                        raise _HandOver
                    self.waiting.pop(label, None)
                    metrics.projection_stopped(target.name, False)
                    await self._drive(target, worker, slot, follow=True)
                except LeaseLost:
                    self.fleet.gave_up(target.name, partition)
                    slot = None
                    log.warning("projection %s lost its lease; waiting to take it again", label)
                except Stopped:
                    self.fleet.gave_up(target.name, partition)
                    slot = None
                except _HandOver:
                    self.fleet.gave_up(target.name, partition)
                    if slot is not None and worker is not None:
                        await worker.release(slot, self.owner)
                        log.info("projection %s: handed over to another runner", label)
                    await _close(worker)
                    worker, slot = None, None
                except Exception as exc:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # cancelled while cleaning up: do not swallow the cancellation
                    self.fleet.gave_up(target.name, partition)
                    failures += 1
                    delay = backoff(failures, cap=30.0)
                    log.exception("projection %s: %s; retrying in %.1fs", label, exc, delay)
                    self.waiting[label] = f"retrying after {type(exc).__name__}: {exc}"
                    if worker is not None:
                        with contextlib.suppress(Exception):
                            await worker.close()
                    worker, slot = None, None
                    await asyncio.sleep(delay)
        finally:
            self.fleet.gave_up(target.name, partition)
            if worker is not None:
                with contextlib.suppress(Exception):
                    if slot is not None:
                        await worker.release(slot, self.owner)
                    await worker.close()

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
        if slot.fresh:
            if target.has_setup:
                await self.applier.setup(target, worker, slot)
            for partition in range(target.partitions):  # held while it was set up
                if partition != slot.partition:
                    await worker.release(replace(slot, partition=partition), setting_up(owner))
        position = slot.position
        started_head = await self.events.head()
        handled = 0
        renew_every = self.lease_ttl / 3
        renew_at = time.monotonic() + renew_every
        wait = 0.01
        wanted = frozenset(target.types)
        unsaved = False  # passed events of other types without writing the checkpoint
        save_by = time.monotonic() + SKIPPED_CHECKPOINT_EVERY
        shared = target.partitions > 1 and follow
        switch_at = 0.0  # when to ask again whether the other partitions have caught up

        def read(after: Position) -> asyncio.Future[tuple[bool, Position, list[RecordedEvent]]]:
            return asyncio.ensure_future(self.pages.records(after, wanted, target, slot.partition))

        pending: asyncio.Future[tuple[bool, Position, list[RecordedEvent]]] | None
        pending = read(position)
        try:
            while True:
                assert pending is not None
                full, goal, records = await pending
                pending = None
                if full:  # read the next page while this one is handled
                    pending = read(goal)
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
                        reached = await self.applier.apply(target, worker, slot, records, goal)
                    renew_at = time.monotonic() + renew_every
                    handled += len(records)
                    position = reached
                    if shared and self.fleet.must_hand_over(target.name, slot.partition):
                        raise _HandOver
                    if progress is not None:
                        progress(RebuildProgress(target.name, handled, position, started_head))
                    if reached != goal:  # a parked event: go on right after it
                        if pending is not None:
                            pending.cancel()
                        pending = read(position)
                        continue
                if full:
                    continue
                if unsaved and (not slot.active or not follow):
                    await self.applier.apply(
                        target, worker, slot, [], position
                    )  # the final checkpoint
                    unsaved = False
                if not slot.active and time.monotonic() >= switch_at:
                    if await worker.switch(slot, owner):
                        slot.active, slot.state = True, "running"
                        log.info(
                            "projection %s: version %d is now active", target.name, slot.version
                        )
                    else:  # other partitions are still catching up: follow, ask again later
                        switch_at = time.monotonic() + min(renew_every, 0.5)
                if not follow and (until is None or position >= until):
                    if progress is not None:
                        progress(
                            RebuildProgress(target.name, handled, position, started_head, True)
                        )
                    return
                if time.monotonic() >= renew_at:
                    if not await worker.renew(slot, owner, self.lease_ttl):
                        raise LeaseLost(slot.name, slot.slot, slot.partition)
                    renew_at = time.monotonic() + renew_every
                    if shared and self.fleet.must_hand_over(target.name, slot.partition):
                        raise _HandOver
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
                pending = read(position)
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending


async def _close(worker: Worker | None) -> None:
    """Close ``worker``'s connection, if any (it may be broken already)."""
    if worker is not None:
        with contextlib.suppress(Exception):
            await worker.close()
