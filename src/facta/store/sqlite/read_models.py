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

import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal, TypeVar

from facta._ids import owner_id
from facta.store import _documents_sql as _sql
from facta.store._leases import LeaseSQL, question
from facta.store._slots_sql import advance_checkpoint
from facta.store.base import Transaction
from facta.store.documents import Condition, DocumentSpec
from facta.store.read_models import (
    DeadLetter,
    Row,
    SlotRow,
    Unit,
    new_slot_rows,
    table_name,
)
from facta.store.sqlite.connections import Connections, immediate
from facta.store.sqlite.hooks import SQLiteTransaction
from facta.store.sqlite.slots import SLOT_COLUMNS, TYPES, adapt, mark, slot_row
from facta.store.sqlite.units import InlineUnit, SQLiteWorker

T = TypeVar("T")


class SQLiteReadModels:
    """Read models in the SQLite file of the engine, on its side connections."""

    def __init__(self, connections: Connections, prefix: str) -> None:
        self.prefix = prefix
        self.slots_table = f"{prefix}projection_slots"
        self.dead_table = f"{prefix}projection_dead_letters"
        self.pins_table = f"{prefix}projection_pins"
        self.runners_table = f"{prefix}projection_runners"
        self.lease = LeaseSQL(self.slots_table, ["name", "slot", "part"], question)
        self.advance = advance_checkpoint(self.slots_table, question)
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
        sql = f"SELECT {SLOT_COLUMNS} FROM {self.slots_table}"
        if name is None:
            rows = await self._run(
                lambda c: c.execute(sql + " ORDER BY name, slot, part").fetchall()
            )
        else:
            rows = await self._run(
                lambda c: c.execute(sql + " WHERE name = ? ORDER BY slot, part", (name,)).fetchall()
            )
        return [slot_row(r) for r in rows]

    async def active(self, name: str) -> SlotRow | None:
        sql = (
            f"SELECT {SLOT_COLUMNS} FROM {self.slots_table}"
            " WHERE name = ? AND active = 1 AND part = 0"
        )
        rows = await self._run(lambda c: c.execute(sql, (name,)).fetchall())
        return slot_row(rows[0]) if rows else None

    async def restart(self, name: str) -> int:
        sql = (
            f"UPDATE {self.slots_table} SET state = CASE WHEN active = 1 THEN 'running'"
            " ELSE 'rebuilding' END, error = NULL, error_event_id = NULL,"
            " error_position = NULL, failed_at = NULL WHERE name = ? AND state = 'failed'"
        )
        return await self._run(lambda c: c.execute(sql, (name,)).rowcount)

    async def pause(self, name: str, holder: str | None = None, ttl: float = 0.0) -> int:
        sql = (
            f"UPDATE {self.slots_table} SET state = 'paused', owner = ?, lease_until = ?"
            " WHERE name = ? AND active = 1 AND state IN ('running', 'paused')"
        )
        values = (holder, time.time() + ttl if holder else 0, name)
        return await self._run(lambda c: c.execute(sql, values).rowcount)

    async def resume(self, name: str) -> int:
        sql = (
            f"UPDATE {self.slots_table} SET state = 'running', owner = NULL, lease_until = 0"
            " WHERE name = ? AND state = 'paused'"
        )
        return await self._run(lambda c: c.execute(sql, (name,)).rowcount)

    async def runners(self, name: str, owner: str, ttl: float) -> int:
        table = self.runners_table

        def run(c: sqlite3.Connection) -> int:
            now = time.time()
            with immediate(c):
                c.execute(
                    f"INSERT INTO {table} VALUES (?, ?, ?) ON CONFLICT (name, owner)"
                    " DO UPDATE SET seen_until = excluded.seen_until",
                    (name, owner, now + ttl),
                )
                c.execute(f"DELETE FROM {table} WHERE name = ? AND seen_until <= ?", (name, now))
                counted: int = c.execute(
                    f"SELECT count(*) FROM {table} WHERE name = ?", (name,)
                ).fetchone()[0]
                return counted

        return await self._run(run)

    async def leave(self, name: str, owner: str) -> None:
        sql = f"DELETE FROM {self.runners_table} WHERE name = ? AND owner = ?"
        await self._run(lambda c: c.execute(sql, (name, owner)))

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

    def insert_slot(
        self,
        c: sqlite3.Connection,
        name: str,
        version: int,
        spec: DocumentSpec[Any],
        state: str,
        owner: str,
        lease_until: float,
        active: bool,
        *,
        partitions: int,
        mine: int | None,
    ) -> list[SlotRow]:
        """Create a slot of ``partitions`` rows leased to ``owner``: all of them, or (with
        ``mine``) that one, and the others to :func:`setting_up` of ``owner``; returns its
        rows, by partition."""
        last = c.execute(
            f"SELECT max(slot) FROM {self.slots_table} WHERE name = ?", (name,)
        ).fetchone()[0]
        slot = (last or 0) + 1
        rows = new_slot_rows(
            name, slot, version, active, state, owner, lease_until, partitions=partitions, mine=mine
        )
        c.executemany(
            f"INSERT INTO {self.slots_table} (name, slot, part, version, active, state, owner,"
            " lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (name, slot, r.partition, version, int(active), state, r.owner, r.lease_until)
                for r in rows
            ],
        )
        table = table_name(self.prefix, name, slot)
        for statement in _sql.create_table(table, spec, TYPES, "BLOB", table):
            c.execute(statement)
        return rows

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

    def retire_or_drop(self, c: sqlite3.Connection, name: str, slot: int) -> None:
        """Drop a slot nobody alive pins; retire a pinned one (in ``c``'s write transaction)."""
        holders = c.execute(
            f"SELECT holder FROM {self.pins_table} WHERE name = ? AND slot = ?", (name, slot)
        ).fetchall()
        gone = [(h,) for (h,) in holders if not _alive(h)]
        c.executemany(f"DELETE FROM {self.pins_table} WHERE holder = ?", gone)
        if len(gone) == len(holders):
            self.drop_slot(c, name, slot)
        else:
            c.execute(
                f"UPDATE {self.slots_table} SET active = 0, state = 'retired', owner = NULL,"
                " lease_until = 0 WHERE name = ? AND slot = ?",
                (name, slot),
            )

    def sweep(self, c: sqlite3.Connection, name: str, now: float, *, abandoned: bool) -> None:
        """Drop ``name``'s slots that are out of use: retired ones nobody pins any more, and
        (``abandoned``) earlier rebuilds whose leases ran out."""
        for slot, retired, held in c.execute(
            f"SELECT slot, min(state = 'retired'), max(lease_until >= ?) FROM {self.slots_table}"
            " WHERE name = ? AND active = 0 GROUP BY slot",
            (now, name),
        ).fetchall():
            if retired:
                self.retire_or_drop(c, name, slot)
            elif abandoned and not held:
                self.drop_slot(c, name, slot)

    def drop_slot(self, c: sqlite3.Connection, name: str, slot: int) -> None:
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
        return InlineUnit(tx.connection, table_name(self.prefix, slot.name, slot.slot), spec)

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
            table, conditions, order_by, descending, after, limit, mark, adapt
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
        sql, parameters = _sql.select_aggregate(table, expression, conditions, mark, adapt)
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
