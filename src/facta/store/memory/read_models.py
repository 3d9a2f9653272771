"""The read-model store of the in-memory event store: dicts beside its log, same lifetime.

Internal. Everything runs on the event loop without awaiting between check and write, so
each operation is atomic; leases work as on SQLite (an owner and an expiry time).
"""

from __future__ import annotations

import operator
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal

from facta.errors import LeaseLost
from facta.store.base import Transaction
from facta.store.documents import Condition, DocumentSpec
from facta.store.memory.events import MemoryEventStore, MemoryTransaction
from facta.store.read_models import (
    Batch,
    DeadLetter,
    Row,
    SlotRow,
    Unit,
    new_slot_rows,
    plan_claim,
    table_name,
)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
}

# (json, index values by field) per key
_Table = dict[str, tuple[bytes, dict[str, Any]]]


class _Database:
    def __init__(self) -> None:
        self.slots: dict[tuple[str, int, int], SlotRow] = {}  # (name, slot, partition)
        self.tables: dict[str, _Table] = {}
        self.dead_letters: list[DeadLetter] = []
        self.pins: dict[tuple[str, int], set[int]] = {}  # slot -> ids of backends pinning it
        self.runners: dict[tuple[str, str], float] = {}  # (name, owner) -> seen until

    def rows_of(self, name: str, slot: int) -> list[SlotRow]:
        """The catalog rows of one slot, one per partition."""
        return [r for (n, s, _), r in self.slots.items() if n == name and s == slot]

    def retire_or_drop(self, key: tuple[str, int]) -> None:
        """Drop a slot nobody pins; retire a pinned one."""
        if self.pins.get(key):
            for row in self.rows_of(*key):
                row.active, row.state, row.owner, row.lease_until = False, "retired", None, 0.0
            return
        for row in self.rows_of(*key):
            del self.slots[row.name, row.slot, row.partition]
        self.pins.pop(key, None)
        self.tables.pop(table_name("", *key), None)
        self.dead_letters = [d for d in self.dead_letters if (d.name, d.slot) != key]


_DATABASES: weakref.WeakKeyDictionary[MemoryEventStore, _Database] = weakref.WeakKeyDictionary()


class MemoryReadModels:
    """Read models of one MemoryEventStore."""

    def __init__(self, store: MemoryEventStore) -> None:
        self.store = store
        self.prefix = ""
        self.db = _DATABASES.setdefault(store, _Database())

    def table(self, name: str, slot: int) -> str:
        return table_name(self.prefix, name, slot)

    async def worker(self) -> _MemoryWorker:
        return _MemoryWorker(self.db)

    async def slots(self, name: str | None = None) -> list[SlotRow]:
        return [
            replace(row)
            for row in sorted(self.db.slots.values(), key=lambda r: (r.name, r.slot, r.partition))
            if name is None or row.name == name
        ]

    async def active(self, name: str) -> SlotRow | None:
        return next(
            (
                replace(r)
                for r in self.db.slots.values()
                if r.name == name and r.active and r.partition == 0
            ),
            None,
        )

    async def restart(self, name: str) -> int:
        count = 0
        for row in self.db.slots.values():
            if row.name == name and row.state == "failed":
                row.state = "running" if row.active else "rebuilding"
                row.error = row.error_event_id = row.error_position = row.failed_at = None
                count += 1
        return count

    async def pause(self, name: str, holder: str | None = None, ttl: float = 0.0) -> int:
        rows = [
            r
            for r in self.db.slots.values()
            if r.name == name and r.active and r.state in ("running", "paused")
        ]
        for row in rows:
            row.state, row.owner = "paused", holder
            row.lease_until = time.time() + ttl if holder else 0.0
        return len(rows)

    async def resume(self, name: str) -> int:
        rows = [r for r in self.db.slots.values() if r.name == name and r.state == "paused"]
        for row in rows:
            row.state, row.owner, row.lease_until = "running", None, 0.0
        return len(rows)

    async def runners(self, name: str, owner: str, ttl: float) -> int:
        now = time.time()
        self.db.runners[name, owner] = now + ttl
        for key, until in list(self.db.runners.items()):
            if until <= now:
                del self.db.runners[key]
        return sum(1 for n, _ in self.db.runners if n == name)

    async def leave(self, name: str, owner: str) -> None:
        self.db.runners.pop((name, owner), None)

    async def dead_letters(self, name: str, limit: int) -> list[DeadLetter]:
        return [d for d in self.db.dead_letters if d.name == name][:limit]

    async def parked(self) -> dict[tuple[str, int], int]:
        counts: dict[tuple[str, int], int] = {}
        for d in self.db.dead_letters:
            counts[d.name, d.slot] = counts.get((d.name, d.slot), 0) + 1
        return counts

    async def clear_dead_letters(self, name: str, event_ids: Sequence[str] | None) -> int:
        wanted = None if event_ids is None else set(event_ids)
        kept = [
            d
            for d in self.db.dead_letters
            if d.name != name or (wanted is not None and d.event_id not in wanted)
        ]
        cleared = len(self.db.dead_letters) - len(kept)
        self.db.dead_letters = kept
        return cleared

    async def mark_inline(self, name: str) -> None:
        for row in self.db.slots.values():
            if row.name == name and row.active:
                row.state, row.owner, row.lease_until = "inline", None, 0.0

    async def pin(self, slot: SlotRow) -> bool:
        key = (slot.name, slot.slot)
        row = self.db.slots.get((slot.name, slot.slot, 0))
        if row is None or not row.active or row.state != "inline" or row.version != slot.version:
            return False
        self.db.pins.setdefault(key, set()).add(id(self))
        return True

    async def unpin(self, slot: SlotRow) -> None:
        self.db.pins.get((slot.name, slot.slot), set()).discard(id(self))

    def inline_unit(self, tx: Transaction, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit:
        assert isinstance(tx, MemoryTransaction)
        return _MemoryUnit(self.db, slot, spec, None, tx)

    async def get(self, slot: SlotRow, key: str) -> bytes | None:
        found = self.db.tables.get(table_name("", slot.name, slot.slot), {}).get(key)
        return None if found is None else found[0]

    def _select(
        self, slot: SlotRow, conditions: list[Condition]
    ) -> list[tuple[str, bytes, dict[str, Any]]]:
        table = self.db.tables.get(table_name("", slot.name, slot.slot), {})
        rows = []
        for key, (data, values) in table.items():
            fields = {"key": key, **values}
            if all(_OPS[c.op](fields[c.field], c.value) for c in conditions):
                rows.append((key, data, fields))
        return rows

    async def query(
        self,
        slot: SlotRow,
        spec: DocumentSpec[Any],
        conditions: list[Condition],
        order_by: str,
        descending: bool,
        after: tuple[Any, str] | None,
        limit: int,
    ) -> list[Row]:
        rows = self._select(slot, conditions)
        if after is not None:
            compare = operator.lt if descending else operator.gt
            rows = [r for r in rows if compare((r[2][order_by], r[0]), after)]
        rows.sort(key=lambda r: (r[2][order_by], r[0]), reverse=descending)
        return [Row(data, fields[order_by], key) for key, data, fields in rows[:limit]]

    async def aggregate(
        self,
        slot: SlotRow,
        spec: DocumentSpec[Any],
        function: Literal["count", "sum"],
        field: str,
        conditions: list[Condition],
    ) -> Any:
        rows = self._select(slot, conditions)
        if function == "count":
            return len(rows)
        zero = Decimal(0) if spec.types[field] is Decimal else 0
        return sum((r[2][field] for r in rows), zero)

    async def close(self) -> None:
        for holders in self.db.pins.values():
            holders.discard(id(self))


class _MemoryWorker:
    def __init__(self, db: _Database) -> None:
        self.db = db
        self.ttl = 10.0

    async def claim(
        self,
        name: str,
        version: int,
        spec: DocumentSpec[Any],
        owner: str,
        ttl: float,
        *,
        downgrade: bool = False,
        partition: int = 0,
        partitions: int = 1,
    ) -> SlotRow | str:
        self.ttl = ttl
        now = time.time()
        rows = [r for r in self.db.slots.values() if r.name == name]
        plan = plan_claim(
            rows,
            version,
            owner,
            now,
            downgrade=downgrade,
            partition=partition,
            partitions=partitions,
        )
        if plan[0] == "wait":
            return plan[1]
        if plan[0] == "create":
            created = self._create(
                name,
                version,
                owner,
                now + ttl,
                active=plan[1],
                partitions=partitions,
                mine=partition,
            )
            return created[partition]
        row = self.db.slots[name, plan[1], partition]
        row.owner, row.lease_until = owner, now + ttl
        return replace(row)

    def _create(
        self,
        name: str,
        version: int,
        owner: str,
        until: float,
        *,
        active: bool,
        partitions: int,
        mine: int | None,
    ) -> list[SlotRow]:
        """A new slot's rows (leased as :func:`new_slot_rows` says) and its table; copies
        of the rows, by partition, marked fresh."""
        slot = 1 + max((s for n, s, _ in self.db.slots if n == name), default=0)
        state = "running" if active else "rebuilding"
        rows = new_slot_rows(
            name, slot, version, active, state, owner, until, partitions=partitions, mine=mine
        )
        for row in rows:
            self.db.slots[name, slot, row.partition] = replace(row, fresh=False)
        self.db.tables[table_name("", name, slot)] = {}
        return rows

    async def new_slot(
        self,
        name: str,
        version: int,
        spec: DocumentSpec[Any],
        owner: str,
        ttl: float,
        *,
        partitions: int = 1,
    ) -> list[SlotRow]:
        self.ttl = ttl
        now = time.time()
        abandoned = {
            (r.name, r.slot)
            for r in self.db.slots.values()
            if r.name == name and not r.active and r.lease_until < now
        }
        for key in abandoned:  # an abandoned earlier rebuild, or retired
            if all(r.lease_until < now for r in self.db.rows_of(*key)):
                self.db.retire_or_drop(key)
        has_active = any(r.active for r in self.db.slots.values() if r.name == name)
        return self._create(
            name,
            version,
            owner,
            now + ttl,
            active=not has_active,
            partitions=partitions,
            mine=None,
        )

    def _held(self, slot: SlotRow, owner: str) -> SlotRow:
        row = self.db.slots.get((slot.name, slot.slot, slot.partition))
        if row is None or row.owner != owner or row.state == "failed":
            raise LeaseLost(slot.name, slot.slot, slot.partition)
        return row

    async def renew(self, slot: SlotRow, owner: str, ttl: float) -> bool:
        try:
            self._held(slot, owner).lease_until = time.time() + ttl
            return True
        except LeaseLost:
            return False

    async def release(self, slot: SlotRow, owner: str) -> None:
        row = self.db.slots.get((slot.name, slot.slot, slot.partition))
        if row is not None and row.owner == owner:
            row.owner, row.lease_until = None, 0.0

    def unit(self, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit:
        return _MemoryUnit(self.db, slot, spec, self, None)

    async def switch(self, slot: SlotRow, owner: str) -> bool:
        row = self._held(slot, owner)
        if row.active:
            return True
        row.state = "ready"
        rows = self.db.rows_of(slot.name, slot.slot)
        if any(r.state != "ready" for r in rows):
            return False
        for key in {(o.name, o.slot) for o in self.db.slots.values() if o.active}:
            if key[0] == slot.name:
                self.db.retire_or_drop(key)
        for r in rows:
            r.active, r.state = True, "running"
        for key in {(o.name, o.slot) for o in self.db.slots.values() if o.state == "retired"}:
            if key[0] == slot.name:
                self.db.retire_or_drop(key)
        return True

    async def close(self) -> None:
        pass


class _MemoryUnit:
    def __init__(
        self,
        db: _Database,
        slot: SlotRow,
        spec: DocumentSpec[Any],
        worker: _MemoryWorker | None,
        tx: MemoryTransaction | None,
    ) -> None:
        self.db = db
        self.slot = slot
        self.spec = spec
        self.worker = worker
        self.tx = tx
        self.table = db.tables.setdefault(table_name("", slot.name, slot.slot), {})

    @property
    def connection(self) -> Any:
        return None

    async def get(self, key: str) -> bytes | None:
        found = self.table.get(key)
        return None if found is None else found[0]

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        table = self.table
        return {k: table[k][0] for k in keys if k in table}

    async def begin(self) -> None:
        pass

    async def commit(self, batch: Batch) -> None:
        if self.tx is not None:
            self.tx.on_commit.append(lambda: self._write(batch))
            return
        assert self.worker is not None
        row = self.worker._held(self.slot, self.slot.owner or "")
        if row.position != self.slot.position:
            raise LeaseLost(self.slot.name, self.slot.slot, self.slot.partition)
        self._write(batch)
        row.position = batch.position
        row.checkpoint_at = batch.checkpoint_at or row.checkpoint_at
        row.handled += batch.handled
        row.lease_until = time.time() + self.worker.ttl
        if batch.failure is not None:
            row.state, row.owner, row.lease_until = "failed", None, 0.0
            row.error_event_id, row.error_position, row.error = batch.failure
            row.failed_at = time.time()
        self.db.dead_letters.extend(batch.parked)
        self.slot.position = batch.position

    def _write(self, batch: Batch) -> None:
        table = self.table
        indexes = self.spec.indexes
        for key in batch.deletes:
            table.pop(key, None)
        for row in batch.upserts:
            table[row[0]] = (row[1], dict(zip(indexes, row[2:], strict=True)))

    async def rollback(self) -> None:
        pass
