"""Units of work on the SQLite engine's read models: a runner's worker (claim, lease, switch)
with its batches, and an inline projection's writes inside an append's transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from facta.errors import LeaseLost
from facta.store import _documents_sql as _sql
from facta.store._slots_sql import advance_values
from facta.store.documents import DocumentSpec
from facta.store.read_models import Batch, SlotRow, Unit, plan_claim, table_name
from facta.store.sqlite.connections import immediate
from facta.store.sqlite.slots import SLOT_COLUMNS, mark, row_adapter, slot_row

if TYPE_CHECKING:
    from facta.store.sqlite.read_models import SQLiteReadModels

T = TypeVar("T")


class SQLiteWorker:
    """A runner's connection for one projection.

    Everything that may wait for the write lock runs on the worker's own thread, one thing
    at a time: a task cancelled while its commit runs there must not close the connection
    under it.
    """

    def __init__(self, backend: SQLiteReadModels, connection: sqlite3.Connection) -> None:
        self.backend = backend
        self.connection = connection
        self.ttl = 10.0
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="facta-projection")

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

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
        table = self.backend.slots_table

        def run() -> SlotRow | str:
            c = self.connection
            with immediate(c):
                now = time.time()
                rows = [
                    slot_row(r)
                    for r in c.execute(
                        f"SELECT {SLOT_COLUMNS} FROM {table} WHERE name = ?", (name,)
                    ).fetchall()
                ]
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
                    state = "running" if plan[1] else "rebuilding"
                    created = self.backend.insert_slot(
                        c,
                        name,
                        version,
                        spec,
                        state,
                        owner,
                        now + ttl,
                        plan[1],
                        partitions=partitions,
                        mine=partition,
                    )
                    return created[partition]
                values = (name, plan[1], partition, owner, now + ttl, now)
                c.execute(self.backend.lease.take, values)
                row = next(r for r in rows if r.slot == plan[1] and r.partition == partition)
                row.owner, row.lease_until = owner, now + ttl
                return row

        return await self._run(run)

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
        table = self.backend.slots_table

        def run() -> list[SlotRow]:
            c = self.connection
            with immediate(c):
                now = time.time()
                self.backend.sweep(c, name, now, abandoned=True)
                active = c.execute(
                    f"SELECT 1 FROM {table} WHERE name = ? AND active = 1", (name,)
                ).fetchone()
                state = "rebuilding" if active else "running"
                return self.backend.insert_slot(
                    c,
                    name,
                    version,
                    spec,
                    state,
                    owner,
                    now + ttl,
                    not active,
                    partitions=partitions,
                    mine=None,
                )

        return await self._run(run)

    async def renew(self, slot: SlotRow, owner: str, ttl: float) -> bool:
        sql = self.backend.lease.renew + " AND state != 'failed'"

        def run() -> bool:
            values = (slot.name, slot.slot, slot.partition, owner, time.time() + ttl)
            return self.connection.execute(sql, values).rowcount == 1

        return await self._run(run)

    async def release(self, slot: SlotRow, owner: str) -> None:
        sql, values = self.backend.lease.release, (slot.name, slot.slot, slot.partition, owner)
        await self._run(lambda: self.connection.execute(sql, values))

    def unit(self, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit:
        return WorkerUnit(self, slot, spec)

    async def switch(self, slot: SlotRow, owner: str) -> bool:
        table = self.backend.slots_table
        key = (slot.name, slot.slot)

        def run() -> bool:
            c = self.connection
            with immediate(c):
                row = c.execute(
                    f"SELECT active, state FROM {table} WHERE name = ? AND slot = ? AND part = ?"
                    " AND owner = ?",
                    (*key, slot.partition, owner),
                ).fetchone()
                if row is None or row[1] not in ("rebuilding", "ready", "running"):
                    raise LeaseLost(slot.name, slot.slot, slot.partition)
                if row[0]:
                    return True  # another partition's switch made it so
                c.execute(
                    f"UPDATE {table} SET state = 'ready' WHERE name = ? AND slot = ? AND part = ?",
                    (*key, slot.partition),
                )
                behind = c.execute(
                    f"SELECT count(*) FROM {table} WHERE name = ? AND slot = ?"
                    " AND state != 'ready'",
                    key,
                ).fetchone()[0]
                if behind:
                    return False
                old = c.execute(
                    f"SELECT DISTINCT slot FROM {table} WHERE name = ? AND active = 1",
                    (slot.name,),
                ).fetchall()
                for (number,) in old:
                    self.backend.retire_or_drop(c, slot.name, number)
                c.execute(
                    f"UPDATE {table} SET active = 1, state = 'running' WHERE name = ? AND slot = ?",
                    (slot.name, slot.slot),
                )
                self.backend.sweep(c, slot.name, time.time(), abandoned=False)
                return True

        return await self._run(run)

    async def close(self) -> None:
        await self._run(self.connection.close)
        self._thread.shutdown(wait=False)


class WorkerUnit:
    """A runner's batch on SQLite."""

    def __init__(self, worker: SQLiteWorker, slot: SlotRow, spec: DocumentSpec[Any]) -> None:
        self.worker = worker
        self.slot = slot
        self.spec = spec
        self.table = table_name(worker.backend.prefix, slot.name, slot.slot)
        self._connection = worker.connection
        self._get = f"SELECT doc FROM {self.table} WHERE doc_key = ?"
        self._begun = False

    @property
    def connection(self) -> Any:
        return self._connection if self._begun else None

    async def get(self, key: str) -> bytes | None:
        row = self._connection.execute(self._get, (key,)).fetchone()
        return None if row is None else row[0]

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        c = self._connection
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            sql = (
                f"SELECT doc_key, doc FROM {self.table}"
                f" WHERE doc_key IN ({', '.join('?' * len(chunk))})"
            )
            found.update(c.execute(sql, chunk).fetchall())
        return found

    async def begin(self) -> None:
        if not self._begun:
            await self.worker._run(lambda: self._connection.execute("BEGIN IMMEDIATE"))
            self._begun = True

    async def commit(self, batch: Batch) -> None:
        await self.worker._run(lambda: self._commit(batch))
        self.slot.position = batch.position

    def _commit(self, batch: Batch) -> None:
        c = self._connection
        slot, backend = self.slot, self.worker.backend
        if not self._begun:
            c.execute("BEGIN IMMEDIATE")
            self._begun = True
        try:
            now = time.time()
            values = advance_values(slot, batch, now + self.worker.ttl, now)
            moved = c.execute(backend.advance, values).rowcount
            if moved != 1:
                raise LeaseLost(slot.name, slot.slot, slot.partition)
            if batch.deletes:
                c.executemany(
                    f"DELETE FROM {self.table} WHERE doc_key = ?", [(k,) for k in batch.deletes]
                )
            if batch.upserts:
                adapt = row_adapter(self.spec)
                rows = batch.upserts if adapt is None else [adapt(r) for r in batch.upserts]
                c.executemany(_sql.upsert(self.table, self.spec, mark), rows)
            if batch.parked:
                c.executemany(
                    f"INSERT OR REPLACE INTO {backend.dead_table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            d.name,
                            d.slot,
                            d.event_id,
                            d.position,
                            d.stream_id,
                            d.type,
                            d.error,
                            d.parked_at,
                        )
                        for d in batch.parked
                    ],
                )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        finally:
            self._begun = False

    async def rollback(self) -> None:
        if self._begun:
            self._begun = False

            def rollback() -> None:
                if self._connection.in_transaction:  # a cancelled commit may have finished
                    self._connection.execute("ROLLBACK")

            await self.worker._run(rollback)


class InlineUnit:
    """An inline projection's writes inside an append's transaction on SQLite."""

    def __init__(self, connection: sqlite3.Connection, table: str, spec: DocumentSpec[Any]) -> None:
        self._connection = connection
        self.table = table
        self.spec = spec

    @property
    def connection(self) -> Any:
        return self._connection

    async def get(self, key: str) -> bytes | None:
        row = self._connection.execute(
            f"SELECT doc FROM {self.table} WHERE doc_key = ?", (key,)
        ).fetchone()
        return None if row is None else row[0]

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        return {k: v for k in keys if (v := await self.get(k)) is not None}

    async def begin(self) -> None:
        pass

    async def commit(self, batch: Batch) -> None:
        c = self._connection
        if batch.deletes:
            c.executemany(
                f"DELETE FROM {self.table} WHERE doc_key = ?", [(k,) for k in batch.deletes]
            )
        if batch.upserts:
            adapt = row_adapter(self.spec)
            rows = batch.upserts if adapt is None else [adapt(r) for r in batch.upserts]
            c.executemany(_sql.upsert(self.table, self.spec, mark), rows)

    async def rollback(self) -> None:
        pass
