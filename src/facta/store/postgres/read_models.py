"""The read-model store of the PostgreSQL engine: tables in the store's schema.

A runner holds a projection's slot with the engine's lease (:mod:`facta.store._leases`:
owner and expiry in the slot's catalog row) and commits each batch (documents, then the
checkpoint, compared with where the batch started and guarded by the lease) in one
transaction: a runner that lost its slot cannot commit, and when one dies another takes
over from the last committed checkpoint once its lease has run out. Documents are written
with one ``unnest`` upsert per batch. Every change to the slots of a name (claim, new slot,
switch) holds a transaction-level advisory lock of that name, so processes make them one at
a time; a slot that a process pins (see :mod:`facta.store.postgres.pins`) is retired rather
than dropped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg

from facta.store import _documents_sql as _sql
from facta.store._leases import LeaseSQL, dollar
from facta.store._slots_sql import advance_checkpoint
from facta.store.base import Transaction
from facta.store.documents import Condition, DocumentSpec
from facta.store.postgres.append import PostgresTransaction
from facta.store.postgres.events import PostgresEventStore
from facta.store.postgres.pins import Pins
from facta.store.postgres.pooling import connection_options, no_session_locks
from facta.store.postgres.slots import SLOT_COLUMNS, TYPES, adapt, mark, slot_row
from facta.store.postgres.units import BatchUnit, PostgresWorker
from facta.store.read_models import (
    DeadLetter,
    Row,
    SlotRow,
    Unit,
    new_slot_rows,
    table_name,
)


class PostgresReadModels:
    """Read models in the schema of one PostgresEventStore."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.dsn = store.dsn
        self.pooled = store.pooled
        self.schema = store.schema
        self.prefix = store.prefix
        self.qualified = f"{store.schema}.{store.prefix}"
        self.slots_table = f"{self.qualified}projection_slots"
        self.lease = LeaseSQL(self.slots_table, ["name", "slot", "part"], dollar)
        self.advance = advance_checkpoint(self.slots_table, dollar)
        self.runner_name = f"facta-runner {store.schema}"[:63]
        """The application_name of runners' connections (pg_stat_activity tells them apart)."""
        # Documents are queried by filters of every shape: custom plans suit them.
        self._options = connection_options(None, pooled=self.pooled, generic_plans=False)
        self._runner_options = connection_options(
            self.runner_name, pooled=self.pooled, generic_plans=False
        )
        self.dead_table = f"{self.qualified}projection_dead_letters"
        self.runners_table = f"{self.qualified}projection_runners"
        self._pool: asyncpg.Pool | None = None
        self._pins: Pins | None = None

    def table(self, name: str, slot: int) -> str:
        return f"{self.schema}.{table_name(self.prefix, name, slot)}"

    def pin_key(self, name: str, slot: int) -> str:
        return f"facta.projection.pin.{self.qualified}{name}.{slot}"

    async def lock_name(self, c: asyncpg.Connection, name: str) -> None:
        """Take turns, until ``c``'s transaction ends, with every change to ``name``'s slots."""
        await c.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"facta.projection.{self.qualified}{name}",
        )

    async def fetch(self, sql: str, *arguments: Any) -> list[Any]:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=4, **self._options
            )
        async with self._pool.acquire() as connection:
            rows: list[Any] = await connection.fetch(sql, *arguments)
            return rows

    # -- catalog ---------------------------------------------------------------------------

    async def worker(self) -> PostgresWorker:
        connection = await asyncpg.connect(self.dsn, **self._runner_options)
        return PostgresWorker(self, connection)

    async def slots(self, name: str | None = None) -> list[SlotRow]:
        sql = f"SELECT {SLOT_COLUMNS} FROM {self.slots_table}"
        if name is None:
            rows = await self.fetch(sql + " ORDER BY name, slot, part")
        else:
            rows = await self.fetch(sql + " WHERE name = $1 ORDER BY slot, part", name)
        return [slot_row(r) for r in rows]

    async def active(self, name: str) -> SlotRow | None:
        rows = await self.fetch(
            f"SELECT {SLOT_COLUMNS} FROM {self.slots_table}"
            " WHERE name = $1 AND active AND part = 0",
            name,
        )
        return slot_row(rows[0]) if rows else None

    async def restart(self, name: str) -> int:
        rows = await self.fetch(
            f"UPDATE {self.slots_table} SET state = CASE WHEN active THEN 'running'"
            " ELSE 'rebuilding' END, error = NULL, error_event_id = NULL,"
            " error_position = NULL, failed_at = NULL WHERE name = $1 AND state = 'failed'"
            " RETURNING slot",
            name,
        )
        return len(rows)

    async def pause(self, name: str, holder: str | None = None, ttl: float = 0.0) -> int:
        rows = await self.fetch(
            f"UPDATE {self.slots_table} SET state = 'paused', owner = $2, lease_until = $3"
            " WHERE name = $1 AND active AND state IN ('running', 'paused') RETURNING slot",
            name,
            holder,
            time.time() + ttl if holder else 0.0,
        )
        return len(rows)

    async def resume(self, name: str) -> int:
        rows = await self.fetch(
            f"UPDATE {self.slots_table} SET state = 'running', owner = NULL, lease_until = 0"
            " WHERE name = $1 AND state = 'paused' RETURNING slot",
            name,
        )
        return len(rows)

    async def runners(self, name: str, owner: str, ttl: float) -> int:
        now = time.time()
        rows = await self.fetch(
            f"WITH seen AS (INSERT INTO {self.runners_table} (name, owner, seen_until)"
            " VALUES ($1, $2, $3) ON CONFLICT (name, owner) DO UPDATE SET seen_until = $3),"
            f" gone AS (DELETE FROM {self.runners_table} WHERE name = $1 AND owner <> $2"
            " AND seen_until < $4)"
            f" SELECT count(*) FROM {self.runners_table}"
            " WHERE name = $1 AND owner <> $2 AND seen_until > $4",
            name,
            owner,
            now + ttl,
            now,
        )
        return int(rows[0][0]) + 1  # the statement sees the table as it was before it

    async def leave(self, name: str, owner: str) -> None:
        await self.fetch(
            f"DELETE FROM {self.runners_table} WHERE name = $1 AND owner = $2", name, owner
        )

    async def dead_letters(self, name: str, limit: int) -> list[DeadLetter]:
        rows = await self.fetch(
            "SELECT name, slot, event_id, position, stream_id, type, error, parked_at"
            f" FROM {self.dead_table} WHERE name = $1 ORDER BY parked_at, event_id LIMIT $2",
            name,
            limit,
        )
        return [DeadLetter(*r) for r in rows]

    async def parked(self) -> dict[tuple[str, int], int]:
        rows = await self.fetch(
            f"SELECT name, slot, count(*) FROM {self.dead_table} GROUP BY name, slot"
        )
        return {(r[0], r[1]): r[2] for r in rows}

    async def clear_dead_letters(self, name: str, event_ids: Sequence[str] | None) -> int:
        sql = f"DELETE FROM {self.dead_table} WHERE name = $1"
        if event_ids is None:
            rows = await self.fetch(sql + " RETURNING event_id", name)
        else:
            rows = await self.fetch(
                sql + " AND event_id = ANY($2::text[]) RETURNING event_id", name, list(event_ids)
            )
        return len(rows)

    async def mark_inline(self, name: str) -> None:
        await self.fetch(
            f"UPDATE {self.slots_table} SET state = 'inline', owner = NULL, lease_until = 0"
            " WHERE name = $1 AND active",
            name,
        )

    async def insert_slot(
        self,
        c: asyncpg.Connection,
        name: str,
        version: int,
        spec: DocumentSpec[Any],
        state: str,
        owner: str,
        active: bool,
        ttl: float,
        *,
        partitions: int,
        mine: int | None,
    ) -> list[SlotRow]:
        """Create a slot of ``partitions`` rows leased to ``owner``: all of them, or (with
        ``mine``) that one, and the others to :func:`setting_up` of ``owner``; returns its
        rows, by partition."""
        last = await c.fetchval(f"SELECT max(slot) FROM {self.slots_table} WHERE name = $1", name)
        slot = (last or 0) + 1
        until = time.time() + ttl
        rows = new_slot_rows(
            name, slot, version, active, state, owner, until, partitions=partitions, mine=mine
        )
        await c.executemany(
            f"INSERT INTO {self.slots_table} (name, slot, part, version, active, state, owner,"
            " lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (name, slot, r.partition, version, active, state, r.owner, r.lease_until)
                for r in rows
            ],
        )
        index = table_name(self.prefix, name, slot)
        for statement in _sql.create_table(self.table(name, slot), spec, TYPES, "bytea", index):
            await c.execute(statement)
        return rows

    async def pin(self, slot: SlotRow) -> bool:
        if self.pooled:
            raise no_session_locks()
        if self._pins is None:
            self._pins = Pins(self._connect)
        key = self.pin_key(slot.name, slot.slot)
        await self._pins.add(key)
        # Pinned first, then looked at: a drop either came before (and shows here) or finds
        # the pin (and retires the slot instead, which shows too).
        rows = await self.fetch(
            f"SELECT 1 FROM {self.slots_table} WHERE name = $1 AND slot = $2 AND active"
            " AND state = 'inline' AND version = $3",
            slot.name,
            slot.slot,
            slot.version,
        )
        if not rows:
            await self._pins.remove(key)
        return bool(rows)

    async def unpin(self, slot: SlotRow) -> None:
        if self._pins is not None:
            await self._pins.remove(self.pin_key(slot.name, slot.slot))

    async def _connect(self) -> asyncpg.Connection:
        connection: asyncpg.Connection = await asyncpg.connect(self.dsn, **self._options)
        return connection

    async def retire_or_drop(self, c: asyncpg.Connection, name: str, slot: int) -> None:
        """Drop a slot nobody pins; retire a pinned one (in ``c``'s transaction, which holds
        the name's lock)."""
        free = await c.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", self.pin_key(name, slot)
        )
        if free:
            await self.drop_slot(c, name, slot)
        else:
            await c.execute(
                f"UPDATE {self.slots_table} SET active = false, state = 'retired', owner = NULL,"
                " lease_until = 0 WHERE name = $1 AND slot = $2",
                name,
                slot,
            )

    async def drop_slot(self, c: asyncpg.Connection, name: str, slot: int) -> None:
        # The catalog row first, as a runner's batch locks it first too: a batch in flight
        # finishes (and then finds its slot gone) before the tables are dropped, no deadlock.
        await c.execute(f"DELETE FROM {self.slots_table} WHERE name = $1 AND slot = $2", name, slot)
        await c.execute(f"DELETE FROM {self.dead_table} WHERE name = $1 AND slot = $2", name, slot)
        base = table_name(self.prefix, name, slot)
        tables = await c.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND starts_with(tablename, $2)",
            self.schema,
            base,
        )
        for (table,) in tables:
            if table == base or table.startswith(base + "_"):
                await c.execute(f"DROP TABLE IF EXISTS {self.schema}.{table}")

    def inline_unit(self, tx: Transaction, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit:
        assert isinstance(tx, PostgresTransaction)
        return BatchUnit(tx.connection, self.table(slot.name, slot.slot), spec, None, slot)

    # -- queries ---------------------------------------------------------------------------

    async def get(self, slot: SlotRow, key: str) -> bytes | None:
        rows = await self.fetch(
            f"SELECT doc FROM {self.table(slot.name, slot.slot)} WHERE doc_key = $1", key
        )
        return bytes(rows[0][0]) if rows else None

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
        sql, parameters = _sql.select_page(
            self.table(slot.name, slot.slot),
            conditions,
            order_by,
            descending,
            after,
            limit,
            mark,
            adapt,
        )
        return [Row(bytes(r[0]), r[1], r[2]) for r in await self.fetch(sql, *parameters)]

    async def aggregate(
        self,
        slot: SlotRow,
        spec: DocumentSpec[Any],
        function: Literal["count", "sum"],
        field: str,
        conditions: list[Condition],
    ) -> Any:
        expression = "count(*)" if function == "count" else f"sum({_sql.column(field)})"
        sql, parameters = _sql.select_aggregate(
            self.table(slot.name, slot.slot), expression, conditions, mark, adapt
        )
        [[value]] = await self.fetch(sql, *parameters)
        if function == "count":
            return value
        return spec.types[field](value or 0)

    async def close(self) -> None:
        if self._pins is not None:
            pins, self._pins = self._pins, None
            await pins.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
