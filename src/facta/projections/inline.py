"""Inline projections: read models written inside the append's transaction.

A read model kept inline is never behind its events: the command that appends them returns
after both committed, and if a handler fails the append rolls back and the caller gets the
error. The price: every process that appends must run the same inline projections (an
append made without them is not seen by them), and the projection's work adds to every
append's latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from facta.codec import Codec
from facta.observability import batches
from facta.projections.progress import ProgressCallback
from facta.projections.projection import Projection
from facta.projections.runner import ProjectionRunner
from facta.projections.session import Session
from facta.results import EventEnvelope
from facta.store.base import START, Hook, RecordedEvent, Transaction, TransactionHook
from facta.store.engine import Engine
from facta.store.read_models import Batch, SlotRow


class InlineProjections:
    """Several inline projections composed into one transaction hook, for an engine with the
    InlineTransactions capability.

    Pass the object itself as the Application's ``transaction_hook``. Call ``setup`` before
    the first command: it builds a projection's storage from the log when it is new or its
    version changed (do this before serving, so no append happens meanwhile), and pins it,
    so that no other process drops it while this one writes it; ``close`` after the last
    command releases it. Events are decoded with ``codec`` (default: one made of the
    projections' event classes, which carry their own schema evolution).

    It takes batches: an engine may group commit concurrent appends and hand it all their
    events at once, which it applies with one read of the documents they touch (for
    projections with ``key_of``) and one write. And it runs in place: its sessions only
    work on the append's transaction, so an engine that writes off the event loop (SQLite)
    runs it right there; a handler that waits on something else after all only costs that
    batch a second try the slow way.
    """

    takes_batches = True
    runs_in_place = True

    def __init__(
        self,
        store: Engine,
        projections: Sequence[Projection[Any]],
        *,
        codec: Codec | None = None,
    ) -> None:
        self.store = store
        self.codec = codec = codec or Codec()
        self.projections = list(projections)
        self.backend = store.read_models
        self._slots: dict[str, SlotRow] = {}
        self._types = {type(p).name: frozenset(p.type_names()) for p in self.projections}
        self._keyed = {type(p).name: type(p).key_of is not Projection.key_of for p in projections}
        for projection in self.projections:
            for kind in type(projection).event_types:
                codec.register(kind)

    async def setup(self, *, progress: ProgressCallback | None = None) -> None:
        """Make sure each projection's current version is stored and up to date, and pin its
        storage for this object's appends (until :meth:`close`).

        Safe from any number of processes at once: one builds a projection's storage, the
        others wait for it and then use the same. Raises RuntimeError if a handler fails
        while building.
        """
        for projection in self.projections:
            kind = type(projection)
            wait = 0.01
            while True:
                active = await self.backend.active(kind.name)
                # Pinned, it cannot be dropped under this process's appends; pinning fails if
                # it was replaced (or is not inline yet) since it was read: build, or wait.
                if (
                    active is not None
                    and (active.version, active.state) == (kind.version, "inline")
                    and await self.backend.pin(active)
                ):
                    self._slots[kind.name] = active
                    break
                runner = ProjectionRunner(self.store, [projection], codec=self.codec)
                try:
                    waiting = await runner.build_inline(kind.name, progress=progress)
                finally:
                    await runner.close()
                if waiting:  # another process is building it: wait for it to finish
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, 0.1)

    async def close(self) -> None:
        """Release the storage pins this object holds (after the last append that uses it)."""
        slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            await self.backend.unpin(slot)

    async def __call__(self, tx: Transaction, records: Sequence[RecordedEvent]) -> None:
        """The transaction hook: apply ``records`` to every projection that wants them."""
        if len(self._slots) != len(self.projections):
            raise RuntimeError("InlineProjections.setup() has not run")
        decode = self.codec.decode
        for projection in self.projections:
            wanted = self._types[type(projection).name]
            relevant = [r for r in records if r.type in wanted]
            if not relevant:
                continue
            slot = self._slots[type(projection).name]
            spec = projection.spec()
            unit = self.backend.inline_unit(tx, slot, spec)
            session: Session[Any] = Session(unit, spec, self.backend.table(slot.name, slot.slot))
            with batches.inline_projection(slot.name, relevant):
                envelopes: list[EventEnvelope[Any]] = [  # any event class the codec reads
                    EventEnvelope(event, record)
                    for record in relevant
                    if (event := decode(record)) is not None
                ]
                if len(envelopes) > 1 and self._keyed[type(projection).name]:
                    key_of = projection.key_of
                    await session._prefetch(k for e in envelopes if (k := key_of(e)) is not None)
                for envelope in envelopes:
                    await projection.handle(envelope, session)
                await unit.commit(session._fill(Batch(START)))


def compose_hooks(*hooks: TransactionHook) -> TransactionHook:
    """One transaction hook that runs ``hooks`` in order (the first error stops the rest
    and rolls the append back); it takes batches, or runs in place, only if every part does."""

    async def composed(tx: Transaction, records: Sequence[RecordedEvent]) -> None:
        for hook in hooks:
            await hook(tx, records)

    return Hook(
        composed,
        takes_batches=all(h.takes_batches for h in hooks),
        runs_in_place=all(h.runs_in_place for h in hooks),
    )
