"""ReadStore: the query side. Reads read models only, never the event log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from facta.projections.projection import Projection
from facta.projections.status import DeadLetter, ProjectionStatus, State
from facta.store.base import Position
from facta.store.documents import (
    D,
    DocumentSpec,
    Filters,
    Page,
    check_limit,
    decode_cursor,
    encode_cursor,
)
from facta.store.engine import Engine
from facta.store.read_models import ReadModels, SlotRow

T = TypeVar("T")


class Documents(Generic[D]):
    """Queries on one projection's documents, always against its active version.

    While a new version is being rebuilt, this keeps answering from the old one; after the
    switch, from the new one. A projection with no storage yet reads as empty.
    """

    def __init__(self, backend: ReadModels, name: str, spec: DocumentSpec[D]) -> None:
        self._backend = backend
        self.name = name
        self.spec = spec

    async def _on_active(self, work: Callable[[SlotRow], Awaitable[T]], empty: T) -> T:
        slot = await self._backend.active(self.name)
        if slot is None:
            return empty
        try:
            return await work(slot)
        except Exception:
            # A switch may have dropped the table between finding the slot and reading it.
            again = await self._backend.active(self.name)
            if again is None or again.slot == slot.slot:
                raise
            return await work(again)

    async def get(self, key: str) -> D | None:
        """The document stored under ``key``, or None."""

        async def work(slot: SlotRow) -> bytes | None:
            return await self._backend.get(slot, key)

        raw = await self._on_active(work, None)
        return None if raw is None else self.spec.decode(raw)

    async def query(
        self,
        where: Filters | None = None,
        *,
        order_by: str = "key",
        descending: bool = False,
        after: str | None = None,
        limit: int = 50,
    ) -> Page[D]:
        """One page of the documents matching ``where``, ordered by ``order_by`` (an indexed
        field or ``"key"``, ties broken by key). Pass ``Page.next`` as ``after`` for the next
        page. Raises ValueError for a field that is not indexed, a bad value, an unknown
        operator, a limit outside 1..1000 or a foreign cursor.
        """
        conditions = self.spec.conditions(where)
        self.spec.field(order_by)
        check_limit(limit)
        cursor = None if after is None else decode_cursor(self.spec, order_by, after)

        async def work(slot: SlotRow) -> Page[D]:
            rows = await self._backend.query(
                slot, self.spec, conditions, order_by, descending, cursor, limit + 1
            )
            decode = self.spec.decode
            items = [decode(r.data) for r in rows[:limit]]
            more = len(rows) > limit
            last = rows[limit - 1] if more else None
            return Page(items, encode_cursor(last.value, last.key) if last else None)

        return await self._on_active(work, Page([], None))

    async def count(self, where: Filters | None = None) -> int:
        """How many documents match ``where``."""
        conditions = self.spec.conditions(where)

        async def work(slot: SlotRow) -> int:
            return int(await self._backend.aggregate(slot, self.spec, "count", "key", conditions))

        return await self._on_active(work, 0)

    async def sum(self, field: str, where: Filters | None = None) -> Any:
        """The sum of the indexed numeric ``field`` over the documents matching ``where``
        (exact for Decimal fields)."""
        conditions = self.spec.conditions(where)
        if self.spec.kinds[self.spec.field(field)] not in ("integer", "real", "numeric"):
            raise ValueError(f"{field!r} is not a numeric field")

        async def work(slot: SlotRow) -> Any:
            return await self._backend.aggregate(slot, self.spec, "sum", field, conditions)

        zero = self.spec.types[field](0)
        return await self._on_active(work, zero)


class ReadStore:
    """The read models kept in an engine's database: documents, status, dead letters.

    It reads through the engine's read-model store and connections, which the engine owns:
    closing the engine closes them. ``replica``: the engine reads a standby of the database
    the projections are written in (a streaming replica): there, a position is reached only
    once the standby has replayed it too, inline read models included.
    """

    def __init__(self, store: Engine, *, replica: bool = False) -> None:
        self.store = store
        self.backend = store.read_models
        self.replica = replica

    def documents(self, projection: type[Projection[D]] | Projection[D]) -> Documents[D]:
        """Queries on ``projection``'s documents."""
        kind = projection if isinstance(projection, type) else type(projection)
        return Documents(self.backend, kind.name, kind.spec())

    async def status(self, name: str | None = None) -> list[ProjectionStatus]:
        """The status of every stored projection slot (or those of ``name``)."""
        rows = await self.backend.slots(name)
        parked = await self.backend.parked() if rows else {}
        head = await self.store.head()
        now = time.time()
        statuses = []
        layouts: dict[tuple[str, int], int] = {}
        for row in rows:
            layouts[row.name, row.slot] = layouts.get((row.name, row.slot), 0) + 1
        for row in rows:
            lag = 0.0
            if row.position < head and row.state != "inline":
                # Not waiting for held-back events: the oldest visible one tells the age.
                first = await self.store.read_all(
                    after=row.position, limit=1, wait_for_held_back=False
                )
                lag = max(0.0, now - first[0].recorded_at) if first else 0.0
            statuses.append(
                ProjectionStatus(
                    name=row.name,
                    version=row.version,
                    slot=row.slot,
                    active=row.active,
                    state=_state(row, now),
                    position=row.position,
                    head=head,
                    lag_events=0
                    if row.state == "inline"
                    else max(0, head.sequence - row.position.sequence),
                    lag_seconds=round(lag, 3),
                    handled=row.handled,
                    owner=row.owner,
                    error=row.error,
                    error_event_id=row.error_event_id,
                    error_position=row.error_position,
                    failed_at=row.failed_at,
                    parked=parked.get((row.name, row.slot), 0),
                    partition=row.partition,
                    partitions=layouts[row.name, row.slot],
                )
            )
        return statuses

    async def dead_letters(self, name: str, limit: int = 100) -> list[DeadLetter]:
        """Events ``name`` parked, oldest first."""
        return await self.backend.dead_letters(name, check_limit(limit))

    async def clear_dead_letters(self, name: str, event_ids: Sequence[str] | None = None) -> int:
        """Forget ``name``'s parked events once dealt with (those of ``event_ids``, or all);
        returns how many. They are not handled again: that is the operator's call."""
        return await self.backend.clear_dead_letters(name, event_ids)

    async def restart(self, name: str) -> int:
        """Clear a failed projection's error so that a runner takes it up again from its
        checkpoint (the failing event first). Returns how many slots were failed."""
        return await self.backend.restart(name)

    async def pause(self, name: str) -> int:
        """Pause projection ``name`` (see ReadModels.pause): its runner stops at its next
        batch or lease renewal, and none takes it up until :meth:`resume`. Returns how many
        partitions were paused (0: nothing to pause: paused already, failed or inline)."""
        if any(r.active and r.state == "paused" for r in await self.backend.slots(name)):
            return 0
        return await self.backend.pause(name)

    async def resume(self, name: str) -> int:
        """Let runners take paused projection ``name`` up again from its checkpoint."""
        return await self.backend.resume(name)

    async def wait_for(self, name: str, position: Position, max_wait: float = 5.0) -> bool:
        """Wait until ``name``'s active slot has handled the log up to ``position`` (for
        read-your-writes after a command), in every partition of it, idle ones included
        (they move their checkpoints past other partitions' events too); False if
        ``max_wait`` seconds passed first."""
        deadline = time.monotonic() + max_wait
        delay = 0.005
        while True:
            rows = [r for r in await self.backend.slots(name) if r.active]
            # An inline read model is written in the command's own transaction: where it is
            # written, it has what any answered command wrote; on a standby, once the
            # standby has replayed the command (its event is in the log there).
            inline_done = not self.replica or await self.store.head() >= position
            if rows and all(
                r.position >= position or (r.state == "inline" and inline_done) for r in rows
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def close(self) -> None:
        """Nothing to release: the connections are the engine's (closed with it)."""


def _state(row: SlotRow, now: float) -> State:
    if row.state in ("failed", "inline", "paused"):
        return row.state  # type: ignore[return-value]  # the catalog's word is the state
    if row.owner is None or row.lease_until < now:
        return "stopped"
    return "rebuilding" if row.state in ("rebuilding", "ready") else "running"
