"""The read-model store of the SQLite event store: tables in the same file as the events.

Internal. A runner's batch commits its documents and its checkpoint in one ``BEGIN
IMMEDIATE`` transaction on the worker's own connection; the checkpoint update only matches
while the runner still holds the lease and the checkpoint is where the batch started, so a
runner that lost its lease writes nothing. Every change to the slots runs in a ``BEGIN
IMMEDIATE`` transaction, so processes make them one at a time, and a slot that a process pins
(a row in ``projection_pins``) is retired rather than dropped. Point reads during a batch run
on the event loop
(microseconds, in-process); anything that may wait for the write lock runs on a thread.
Indexed Decimal fields are REAL columns: filters and ordering on them are at double
precision (the documents themselves keep the exact value).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, Literal, TypeVar

from facta._ids import owner_id
from facta.errors import LeaseLost
from facta.store import _documents_sql as _sql
from facta.store._leases import LeaseSQL, question
from facta.store.base import Position, Transaction
from facta.store.documents import Condition, DocumentSpec
from facta.store.read_models import (
    Batch,
    DeadLetter,
    Row,
    SlotRow,
    Unit,
    plan_claim,
    table_name,
)
from facta.store.sqlite.connections import Connections, immediate
from facta.store.sqlite.events import SQLiteTransaction

T = TypeVar("T")

_TYPES = {
    "text": "TEXT",
    "integer": "INTEGER",
    "real": "REAL",
    "boolean": "INTEGER",
    "numeric": "REAL",
}
_SLOT_COLUMNS = (
    "name, slot, version, active, state, checkpoint_commit, checkpoint_sequence, checkpoint_at,"
    " handled, owner, lease_until, error, error_event_id, error_position, failed_at"
)


def _mark(_: int) -> str:
    return "?"


def _adapt(_: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value


def _slot(row: Sequence[Any]) -> SlotRow:
    return SlotRow(
        row[0],
        row[1],
        row[2],
        bool(row[3]),
        row[4],
        Position(row[5], row[6]),
        *row[7:],
    )


def _row_adapter(spec: DocumentSpec[Any]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]] | None:
    """Converts Decimal values of a stored row to float (None when no column needs it)."""
    decimals = [i + 2 for i, f in enumerate(spec.indexes) if spec.kinds[f] == "numeric"]
    if not decimals:
        return None

    def adapt(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i in decimals:
            values[i] = float(values[i])
        return tuple(values)

    return adapt


class SQLiteReadModels:
    """Read models in the SQLite file of the engine, on its side connections."""

    def __init__(self, connections: Connections, prefix: str) -> None:
        self.prefix = prefix
        self.slots_table = f"{prefix}projection_slots"
        self.dead_table = f"{prefix}projection_dead_letters"
        self.pins_table = f"{prefix}projection_pins"
        self.lease = LeaseSQL(self.slots_table, ["name", "slot"], question)
        self.holder = owner_id()
        self._pinned = False
        self._connections = connections
        self.connect = connections.connect
        self._run = connections.run

    # -- catalog ---------------------------------------------------------------------------

    def table(self, name: str, slot: int) -> str:
        return table_name(self.prefix, name, slot)

    async def worker(self) -> SQLiteWorker:
        return SQLiteWorker(self, self.connect())

    async def slots(self, name: str | None = None) -> list[SlotRow]:
        sql = f"SELECT {_SLOT_COLUMNS} FROM {self.slots_table}"
        if name is None:
            rows = await self._run(lambda c: c.execute(sql + " ORDER BY name, slot").fetchall())
        else:
            rows = await self._run(
                lambda c: c.execute(sql + " WHERE name = ? ORDER BY slot", (name,)).fetchall()
            )
        return [_slot(r) for r in rows]

    async def active(self, name: str) -> SlotRow | None:
        sql = f"SELECT {_SLOT_COLUMNS} FROM {self.slots_table} WHERE name = ? AND active = 1"
        rows = await self._run(lambda c: c.execute(sql, (name,)).fetchall())
        return _slot(rows[0]) if rows else None

    async def restart(self, name: str) -> int:
        sql = (
            f"UPDATE {self.slots_table} SET state = CASE WHEN active = 1 THEN 'running'"
            " ELSE 'rebuilding' END, error = NULL, error_event_id = NULL,"
            " error_position = NULL, failed_at = NULL WHERE name = ? AND state = 'failed'"
        )
        return await self._run(lambda c: c.execute(sql, (name,)).rowcount)

    async def dead_letters(self, name: str, limit: int) -> list[DeadLetter]:
        sql = (
            "SELECT name, slot, event_id, position, stream_id, type, error, parked_at"
            f" FROM {self.dead_table} WHERE name = ? ORDER BY parked_at, event_id LIMIT ?"
        )
        rows = await self._run(lambda c: c.execute(sql, (name, limit)).fetchall())
        return [DeadLetter(*r) for r in rows]

    async def parked(self) -> dict[tuple[str, int], int]:
        sql = f"SELECT name, slot, count(*) FROM {self.dead_table} GROUP BY name, slot"
        rows = await self._run(lambda c: c.execute(sql).fetchall())
        return {(name, slot): count for name, slot, count in rows}

    async def clear_dead_letters(self, name: str, event_ids: Sequence[str] | None) -> int:
        sql = f"DELETE FROM {self.dead_table} WHERE name = ?"
        if event_ids is None:
            return await self._run(lambda c: c.execute(sql, (name,)).rowcount)
        rows = [(name, event_id) for event_id in event_ids]

        def delete(c: sqlite3.Connection) -> int:
            return c.executemany(sql + " AND event_id = ?", rows).rowcount

        return await self._run(delete)

    async def mark_inline(self, name: str) -> None:
        sql = (
            f"UPDATE {self.slots_table} SET state = 'inline', owner = NULL, lease_until = 0"
            " WHERE name = ? AND active = 1"
        )
        await self._run(lambda c: c.execute(sql, (name,)))

    def _insert_slot(
        self,
        c: sqlite3.Connection,
        name: str,
        version: int,
        spec: DocumentSpec[Any],
        state: str,
        owner: str | None,
        lease_until: float,
        active: bool,
    ) -> SlotRow:
        last = c.execute(
            f"SELECT max(slot) FROM {self.slots_table} WHERE name = ?", (name,)
        ).fetchone()[0]
        slot = (last or 0) + 1
        c.execute(
            f"INSERT INTO {self.slots_table} (name, slot, version, active, state, owner,"
            " lease_until) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, slot, version, int(active), state, owner, lease_until),
        )
        table = table_name(self.prefix, name, slot)
        for statement in _sql.create_table(table, spec, _TYPES, "BLOB", table):
            c.execute(statement)
        return SlotRow(
            name,
            slot,
            version,
            active,
            state,
            Position(0, 0),
            None,
            0,
            owner,
            lease_until,
            fresh=True,
        )

    async def pin(self, slot: SlotRow) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            with immediate(c):
                found = c.execute(
                    f"SELECT 1 FROM {self.slots_table} WHERE name = ? AND slot = ? AND active = 1"
                    " AND state = 'inline' AND version = ?",
                    (slot.name, slot.slot, slot.version),
                ).fetchone()
                if found:
                    c.execute(
                        f"INSERT OR IGNORE INTO {self.pins_table} VALUES (?, ?, ?)",
                        (slot.name, slot.slot, self.holder),
                    )
                return found is not None

        pinned = await self._run(run)
        self._pinned = self._pinned or pinned
        return pinned

    async def unpin(self, slot: SlotRow) -> None:
        sql = f"DELETE FROM {self.pins_table} WHERE name = ? AND slot = ? AND holder = ?"
        await self._run(lambda c: c.execute(sql, (slot.name, slot.slot, self.holder)))

    def _retire_or_drop(self, c: sqlite3.Connection, name: str, slot: int) -> None:
        """Drop a slot nobody alive pins; retire a pinned one (in ``c``'s write transaction)."""
        holders = c.execute(
            f"SELECT holder FROM {self.pins_table} WHERE name = ? AND slot = ?", (name, slot)
        ).fetchall()
        gone = [(h,) for (h,) in holders if not _alive(h)]
        c.executemany(f"DELETE FROM {self.pins_table} WHERE holder = ?", gone)
        if len(gone) == len(holders):
            self._drop_slot(c, name, slot)
        else:
            c.execute(
                f"UPDATE {self.slots_table} SET active = 0, state = 'retired', owner = NULL,"
                " lease_until = 0 WHERE name = ? AND slot = ?",
                (name, slot),
            )

    def _sweep(self, c: sqlite3.Connection, name: str, now: float, *, abandoned: bool) -> None:
        """Drop ``name``'s slots that are out of use: retired ones nobody pins any more, and
        (``abandoned``) earlier rebuilds whose lease ran out."""
        for slot, state, lease_until in c.execute(
            f"SELECT slot, state, lease_until FROM {self.slots_table}"
            " WHERE name = ? AND active = 0",
            (name,),
        ).fetchall():
            if state == "retired":
                self._retire_or_drop(c, name, slot)
            elif abandoned and lease_until < now:
                self._drop_slot(c, name, slot)

    def _drop_slot(self, c: sqlite3.Connection, name: str, slot: int) -> None:
        base = table_name(self.prefix, name, slot)
        tables = c.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in tables:
            if table == base or table.startswith(base + "_"):
                c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"DELETE FROM {self.slots_table} WHERE name = ? AND slot = ?", (name, slot))
        c.execute(f"DELETE FROM {self.dead_table} WHERE name = ? AND slot = ?", (name, slot))
        c.execute(f"DELETE FROM {self.pins_table} WHERE name = ? AND slot = ?", (name, slot))

    def inline_unit(self, tx: Transaction, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit:
        assert isinstance(tx, SQLiteTransaction)
        return _InlineUnit(tx.connection, table_name(self.prefix, slot.name, slot.slot), spec)

    # -- queries ---------------------------------------------------------------------------

    async def get(self, slot: SlotRow, key: str) -> bytes | None:
        sql = f"SELECT doc FROM {table_name(self.prefix, slot.name, slot.slot)} WHERE doc_key = ?"
        rows = await self._run(lambda c: c.execute(sql, (key,)).fetchall())
        return rows[0][0] if rows else None

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
        table = table_name(self.prefix, slot.name, slot.slot)
        sql, parameters = _sql.select_page(
            table, conditions, order_by, descending, after, limit, _mark, _adapt
        )
        rows = await self._run(lambda c: c.execute(sql, parameters).fetchall())
        return [Row(*r) for r in rows]

    async def aggregate(
        self,
        slot: SlotRow,
        spec: DocumentSpec[Any],
        function: Literal["count", "sum"],
        field: str,
        conditions: list[Condition],
    ) -> Any:
        table = table_name(self.prefix, slot.name, slot.slot)
        if function == "count":
            expression = "count(*)"
        elif spec.kinds[field] == "numeric":
            # Sum the documents' exact decimal text, not the REAL column.
            expression = f"group_concat(json_extract(doc, '$.{field}'), ',')"
        else:
            expression = f"coalesce(sum({_sql.column(field)}), 0)"
        sql, parameters = _sql.select_aggregate(table, expression, conditions, _mark, _adapt)
        [[value]] = await self._run(lambda c: c.execute(sql, parameters).fetchall())
        if function == "sum" and spec.kinds[field] == "numeric":
            return sum((Decimal(v) for v in (value or "").split(",") if v), Decimal(0))
        return value

    async def close(self) -> None:
        if self._pinned:
            self._pinned = False
            sql = f"DELETE FROM {self.pins_table} WHERE holder = ?"
            await self._run(lambda c: c.execute(sql, (self.holder,)))


_HOST = socket.gethostname()


def _alive(holder: str) -> bool:
    """Whether the process that pinned as ``holder`` ("host:pid:tag") may still run."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != _HOST or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, as another user's
        return True
    return True


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
    ) -> SlotRow | str:
        self.ttl = ttl
        table = self.backend.slots_table

        def run() -> SlotRow | str:
            c = self.connection
            with immediate(c):
                now = time.time()
                rows = [
                    _slot(r)
                    for r in c.execute(
                        f"SELECT {_SLOT_COLUMNS} FROM {table} WHERE name = ?", (name,)
                    ).fetchall()
                ]
                plan = plan_claim(rows, version, owner, now, downgrade=downgrade)
                if plan[0] == "wait":
                    return plan[1]
                if plan[0] == "create":
                    state = "running" if plan[1] else "rebuilding"
                    return self.backend._insert_slot(
                        c, name, version, spec, state, owner, now + ttl, plan[1]
                    )
                c.execute(self.backend.lease.take, (name, plan[1], owner, now + ttl, now))
                row = next(r for r in rows if r.slot == plan[1])
                row.owner, row.lease_until = owner, now + ttl
                return row

        return await self._run(run)

    async def new_slot(
        self, name: str, version: int, spec: DocumentSpec[Any], owner: str, ttl: float
    ) -> SlotRow:
        self.ttl = ttl
        table = self.backend.slots_table

        def run() -> SlotRow:
            c = self.connection
            with immediate(c):
                now = time.time()
                self.backend._sweep(c, name, now, abandoned=True)
                active = c.execute(
                    f"SELECT 1 FROM {table} WHERE name = ? AND active = 1", (name,)
                ).fetchone()
                state = "rebuilding" if active else "running"
                return self.backend._insert_slot(
                    c, name, version, spec, state, owner, now + ttl, not active
                )

        return await self._run(run)

    async def renew(self, slot: SlotRow, owner: str, ttl: float) -> bool:
        sql = self.backend.lease.renew + " AND state != 'failed'"

        def run() -> bool:
            values = (slot.name, slot.slot, owner, time.time() + ttl)
            return self.connection.execute(sql, values).rowcount == 1

        return await self._run(run)

    async def release(self, slot: SlotRow, owner: str) -> None:
        sql, values = self.backend.lease.release, (slot.name, slot.slot, owner)
        await self._run(lambda: self.connection.execute(sql, values))

    def unit(self, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit:
        return _WorkerUnit(self, slot, spec)

    async def switch(self, slot: SlotRow, owner: str) -> None:
        table = self.backend.slots_table

        def run() -> None:
            c = self.connection
            with immediate(c):
                held = c.execute(
                    f"SELECT 1 FROM {table} WHERE name = ? AND slot = ? AND owner = ?"
                    " AND state = 'rebuilding'",
                    (slot.name, slot.slot, owner),
                ).fetchone()
                if not held:
                    raise LeaseLost(slot.name, slot.slot)
                old = c.execute(
                    f"SELECT slot FROM {table} WHERE name = ? AND active = 1", (slot.name,)
                ).fetchall()
                for (number,) in old:
                    self.backend._retire_or_drop(c, slot.name, number)
                c.execute(
                    f"UPDATE {table} SET active = 1, state = 'running' WHERE name = ? AND slot = ?",
                    (slot.name, slot.slot),
                )
                self.backend._sweep(c, slot.name, time.time(), abandoned=False)

        await self._run(run)

    async def close(self) -> None:
        await self._run(self.connection.close)
        self._thread.shutdown(wait=False)


class _WorkerUnit:
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
            failure = batch.failure
            moved = c.execute(
                f"UPDATE {backend.slots_table} SET checkpoint_commit = ?,"
                " checkpoint_sequence = ?, checkpoint_at = coalesce(?, checkpoint_at),"
                " handled = handled + ?, lease_until = ?,"
                " state = CASE WHEN ? THEN 'failed' ELSE state END,"
                " owner = CASE WHEN ? THEN NULL ELSE owner END,"
                " error_event_id = ?, error_position = ?, error = ?, failed_at = ?"
                " WHERE name = ? AND slot = ? AND owner = ? AND state != 'failed'"
                " AND checkpoint_commit = ? AND checkpoint_sequence = ?",
                (
                    batch.position.commit,
                    batch.position.sequence,
                    batch.checkpoint_at,
                    batch.handled,
                    now + self.worker.ttl,
                    failure is not None,
                    failure is not None,
                    *(failure or (None, None, None)),
                    now if failure else None,
                    slot.name,
                    slot.slot,
                    slot.owner,
                    slot.position.commit,
                    slot.position.sequence,
                ),
            ).rowcount
            if moved != 1:
                raise LeaseLost(slot.name, slot.slot)
            if batch.deletes:
                c.executemany(
                    f"DELETE FROM {self.table} WHERE doc_key = ?", [(k,) for k in batch.deletes]
                )
            if batch.upserts:
                adapt = _row_adapter(self.spec)
                rows = batch.upserts if adapt is None else [adapt(r) for r in batch.upserts]
                c.executemany(_sql.upsert(self.table, self.spec, _mark), rows)
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


class _InlineUnit:
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
            adapt = _row_adapter(self.spec)
            rows = batch.upserts if adapt is None else [adapt(r) for r in batch.upserts]
            c.executemany(_sql.upsert(self.table, self.spec, _mark), rows)

    async def rollback(self) -> None:
        pass
