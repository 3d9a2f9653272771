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

import contextlib
import time
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from facta.errors import LeaseLost
from facta.store import _documents_sql as _sql
from facta.store._leases import LeaseSQL, dollar
from facta.store.base import Position, Transaction
from facta.store.documents import Condition, DocumentSpec
from facta.store.postgres.append import PostgresTransaction
from facta.store.postgres.events import PostgresEventStore
from facta.store.postgres.pins import Pins
from facta.store.read_models import (
    Batch,
    DeadLetter,
    Row,
    SlotRow,
    Unit,
    plan_claim,
    table_name,
)

_TYPES = {
    "text": "text",
    "integer": "bigint",
    "real": "double precision",
    "boolean": "boolean",
    "numeric": "numeric",
}
_SLOT_COLUMNS = (
    "name, slot, version, active, state, checkpoint_commit, checkpoint_sequence, checkpoint_at,"
    " handled, owner, lease_until, error, error_event_id, error_position, failed_at"
)


def _mark(n: int) -> str:
    return f"${n}"


def _adapt(_: str, value: Any) -> Any:
    return value


def _slot(row: Any) -> SlotRow:
    return SlotRow(row[0], row[1], row[2], bool(row[3]), row[4], Position(row[5], row[6]), *row[7:])


class PostgresReadModels:
    """Read models in the schema of one PostgresEventStore."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.dsn = store.dsn
        self.schema = store.schema
        self.prefix = store.prefix
        self.qualified = f"{store.schema}.{store.prefix}"
        self.slots_table = f"{self.qualified}projection_slots"
        self.lease = LeaseSQL(self.slots_table, ["name", "slot"], dollar)
        self.runner_name = f"facta-runner {store.schema}"[:63]
        """The application_name of runners' connections (pg_stat_activity tells them apart)."""
        self.dead_table = f"{self.qualified}projection_dead_letters"
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

    async def _fetch(self, sql: str, *arguments: Any) -> list[Any]:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=4, server_settings={"jit": "off"}
            )
        async with self._pool.acquire() as connection:
            rows: list[Any] = await connection.fetch(sql, *arguments)
            return rows

    # -- catalog ---------------------------------------------------------------------------

    async def worker(self) -> PostgresWorker:
        connection = await asyncpg.connect(
            self.dsn, server_settings={"jit": "off", "application_name": self.runner_name}
        )
        return PostgresWorker(self, connection)

    async def slots(self, name: str | None = None) -> list[SlotRow]:
        sql = f"SELECT {_SLOT_COLUMNS} FROM {self.slots_table}"
        if name is None:
            rows = await self._fetch(sql + " ORDER BY name, slot")
        else:
            rows = await self._fetch(sql + " WHERE name = $1 ORDER BY slot", name)
        return [_slot(r) for r in rows]

    async def active(self, name: str) -> SlotRow | None:
        rows = await self._fetch(
            f"SELECT {_SLOT_COLUMNS} FROM {self.slots_table} WHERE name = $1 AND active", name
        )
        return _slot(rows[0]) if rows else None

    async def restart(self, name: str) -> int:
        rows = await self._fetch(
            f"UPDATE {self.slots_table} SET state = CASE WHEN active THEN 'running'"
            " ELSE 'rebuilding' END, error = NULL, error_event_id = NULL,"
            " error_position = NULL, failed_at = NULL WHERE name = $1 AND state = 'failed'"
            " RETURNING slot",
            name,
        )
        return len(rows)

    async def dead_letters(self, name: str, limit: int) -> list[DeadLetter]:
        rows = await self._fetch(
            "SELECT name, slot, event_id, position, stream_id, type, error, parked_at"
            f" FROM {self.dead_table} WHERE name = $1 ORDER BY parked_at, event_id LIMIT $2",
            name,
            limit,
        )
        return [DeadLetter(*r) for r in rows]

    async def parked(self) -> dict[tuple[str, int], int]:
        rows = await self._fetch(
            f"SELECT name, slot, count(*) FROM {self.dead_table} GROUP BY name, slot"
        )
        return {(r[0], r[1]): r[2] for r in rows}

    async def clear_dead_letters(self, name: str, event_ids: Sequence[str] | None) -> int:
        sql = f"DELETE FROM {self.dead_table} WHERE name = $1"
        if event_ids is None:
            rows = await self._fetch(sql + " RETURNING event_id", name)
        else:
            rows = await self._fetch(
                sql + " AND event_id = ANY($2::text[]) RETURNING event_id", name, list(event_ids)
            )
        return len(rows)

    async def mark_inline(self, name: str) -> None:
        await self._fetch(
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
        owner: str | None,
        active: bool,
        ttl: float,
    ) -> SlotRow:
        last = await c.fetchval(f"SELECT max(slot) FROM {self.slots_table} WHERE name = $1", name)
        slot = (last or 0) + 1
        until = time.time() + ttl if owner else 0.0
        await c.execute(
            f"INSERT INTO {self.slots_table} (name, slot, version, active, state, owner,"
            " lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            name,
            slot,
            version,
            active,
            state,
            owner,
            until,
        )
        index = table_name(self.prefix, name, slot)
        for statement in _sql.create_table(self.table(name, slot), spec, _TYPES, "bytea", index):
            await c.execute(statement)
        return SlotRow(
            name, slot, version, active, state, Position(0, 0), None, 0, owner, until, fresh=True
        )

    async def pin(self, slot: SlotRow) -> bool:
        if self._pins is None:
            self._pins = Pins(self._connect)
        key = self.pin_key(slot.name, slot.slot)
        await self._pins.add(key)
        # Pinned first, then looked at: a drop either came before (and shows here) or finds
        # the pin (and retires the slot instead, which shows too).
        rows = await self._fetch(
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
        connection: asyncpg.Connection = await asyncpg.connect(
            self.dsn, server_settings={"jit": "off"}
        )
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
        return _Unit(tx.connection, self.table(slot.name, slot.slot), spec, None, slot)

    # -- queries ---------------------------------------------------------------------------

    async def get(self, slot: SlotRow, key: str) -> bytes | None:
        rows = await self._fetch(
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
            _mark,
            _adapt,
        )
        return [Row(bytes(r[0]), r[1], r[2]) for r in await self._fetch(sql, *parameters)]

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
            self.table(slot.name, slot.slot), expression, conditions, _mark, _adapt
        )
        [[value]] = await self._fetch(sql, *parameters)
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


class PostgresWorker:
    """A runner's connection for one projection."""

    def __init__(self, backend: PostgresReadModels, connection: asyncpg.Connection) -> None:
        self.backend = backend
        self.connection = connection
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
    ) -> SlotRow | str:
        b, c = self.backend, self.connection
        self.ttl = ttl
        async with c.transaction():
            # Claims of one name take turns, so two runners never create two slots.
            await b.lock_name(c, name)
            rows = [
                _slot(r)
                for r in await c.fetch(
                    f"SELECT {_SLOT_COLUMNS} FROM {b.slots_table} WHERE name = $1", name
                )
            ]
            now = time.time()
            plan = plan_claim(rows, version, owner, now, downgrade=downgrade)
            if plan[0] == "wait":
                return plan[1]
            if plan[0] == "create":
                state = "running" if plan[1] else "rebuilding"
                return await b.insert_slot(c, name, version, spec, state, owner, plan[1], ttl)
            row = next(r for r in rows if r.slot == plan[1])
            row.owner, row.lease_until = owner, now + ttl
            await c.execute(b.lease.take, name, row.slot, owner, row.lease_until, now)
            return row

    async def new_slot(
        self, name: str, version: int, spec: DocumentSpec[Any], owner: str, ttl: float
    ) -> SlotRow:
        b, c = self.backend, self.connection
        self.ttl = ttl
        async with c.transaction():
            await b.lock_name(c, name)
            await self._sweep(name)
            active = await c.fetchval(
                f"SELECT count(*) FROM {b.slots_table} WHERE name = $1 AND active", name
            )
            state = "rebuilding" if active else "running"
            return await b.insert_slot(c, name, version, spec, state, owner, not active, ttl)

    async def _sweep(self, name: str, *, abandoned: bool = True) -> None:
        """Drop ``name``'s slots that are out of use: retired ones nobody pins any more, and
        (``abandoned``) earlier rebuilds whose lease nobody holds any more. In a
        transaction holding the name's lock."""
        b, c = self.backend, self.connection
        for number, state, owner, lease_until in await c.fetch(
            f"SELECT slot, state, owner, lease_until FROM {b.slots_table}"
            " WHERE name = $1 AND NOT active",
            name,
        ):
            if state == "retired":
                await b.retire_or_drop(c, name, number)
            elif abandoned and (owner is None or lease_until <= time.time()):
                await b.drop_slot(c, name, number)

    async def renew(self, slot: SlotRow, owner: str, ttl: float) -> bool:
        status = await self.connection.execute(
            self.backend.lease.renew + " AND state <> 'failed'",
            slot.name,
            slot.slot,
            owner,
            time.time() + ttl,
        )
        return bool(status == "UPDATE 1")

    async def release(self, slot: SlotRow, owner: str) -> None:
        await self.connection.execute(self.backend.lease.release, slot.name, slot.slot, owner)

    def unit(self, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit:
        return _Unit(self.connection, self.backend.table(slot.name, slot.slot), spec, self, slot)

    async def switch(self, slot: SlotRow, owner: str) -> None:
        b, c = self.backend, self.connection
        async with c.transaction():
            # Switches take turns with each other and with claims (two rebuilds finishing at
            # once would each make their slot the active one).
            await b.lock_name(c, slot.name)
            held = await c.fetchval(
                f"SELECT 1 FROM {b.slots_table} WHERE name = $1 AND slot = $2"
                " AND owner = $3 AND state = 'rebuilding' FOR UPDATE",
                slot.name,
                slot.slot,
                owner,
            )
            if not held:
                raise LeaseLost(slot.name, slot.slot)
            for r in await c.fetch(
                f"SELECT slot FROM {b.slots_table} WHERE name = $1 AND active", slot.name
            ):
                await b.retire_or_drop(c, slot.name, r[0])
            await c.execute(
                f"UPDATE {b.slots_table} SET active = true, state = 'running'"
                " WHERE name = $1 AND slot = $2",
                slot.name,
                slot.slot,
            )
            await self._sweep(slot.name, abandoned=False)

    async def close(self) -> None:
        await self.connection.close()


class _Unit:
    """A batch on a runner's connection, or an inline projection's writes in an append."""

    def __init__(
        self,
        connection: asyncpg.Connection | PoolConnectionProxy[Any],
        table: str,
        spec: DocumentSpec[Any],
        worker: PostgresWorker | None,
        slot: SlotRow,
    ) -> None:
        self._connection = connection
        self.table = table
        self.spec = spec
        self.worker = worker
        self.slot = slot
        self._transaction: Any = None
        self._get = f"SELECT doc FROM {table} WHERE doc_key = $1"
        names = ["doc_key", "doc", *[_sql.column(f) for f in spec.indexes]]
        types = ["text", "bytea", *[_TYPES[spec.kinds[f]] for f in spec.indexes]]
        unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        self._upsert = (
            f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM unnest({unnest})"
            f" ON CONFLICT (doc_key) DO UPDATE SET {updates}"
        )

    @property
    def connection(self) -> Any:
        return self._connection

    async def get(self, key: str) -> bytes | None:
        value = await self._connection.fetchval(self._get, key)
        return None if value is None else bytes(value)

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        rows = await self._connection.fetch(
            f"SELECT doc_key, doc FROM {self.table} WHERE doc_key = ANY($1::text[])", list(keys)
        )
        return {r[0]: bytes(r[1]) for r in rows}

    async def begin(self) -> None:
        if self.worker is not None and self._transaction is None:
            self._transaction = self._connection.transaction()
            await self._transaction.start()

    async def _write(self, batch: Batch) -> None:
        c = self._connection
        if batch.deletes:
            await c.execute(
                f"DELETE FROM {self.table} WHERE doc_key = ANY($1::text[])", batch.deletes
            )
        if batch.upserts:
            columns = [list(column) for column in zip(*batch.upserts, strict=True)]
            await c.execute(self._upsert, *columns)

    async def commit(self, batch: Batch) -> None:
        if self.worker is None:  # inline: the append's transaction commits
            await self._write(batch)
            return
        await self.begin()
        try:
            await self._checkpoint(batch)
            await self._write(batch)
            if batch.parked:
                await self._connection.executemany(
                    f"INSERT INTO {self.worker.backend.dead_table} VALUES"
                    " ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
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
            await self._transaction.commit()
        except BaseException:
            with contextlib.suppress(Exception):  # a broken connection: the server rolls back
                await self._transaction.rollback()
            raise
        finally:
            self._transaction = None
        self.slot.position = batch.position

    async def _checkpoint(self, batch: Batch) -> None:
        assert self.worker is not None
        slot, failure = self.slot, batch.failure
        now = time.time()
        status = await self._connection.execute(
            f"UPDATE {self.worker.backend.slots_table} SET checkpoint_commit = $1,"
            " checkpoint_sequence = $2, checkpoint_at = coalesce($3, checkpoint_at),"
            " handled = handled + $4, lease_until = $5,"
            " state = CASE WHEN $6 THEN 'failed' ELSE state END,"
            " owner = CASE WHEN $6 THEN NULL ELSE owner END,"
            " error_event_id = $7, error_position = $8, error = $9, failed_at = $10"
            " WHERE name = $11 AND slot = $12 AND owner = $13 AND state <> 'failed'"
            " AND checkpoint_commit = $14 AND checkpoint_sequence = $15",
            batch.position.commit,
            batch.position.sequence,
            batch.checkpoint_at,
            batch.handled,
            now + self.worker.ttl,
            failure is not None,
            *(failure or (None, None, None)),
            now if failure else None,
            slot.name,
            slot.slot,
            slot.owner,
            slot.position.commit,
            slot.position.sequence,
        )
        if status != "UPDATE 1":
            raise LeaseLost(slot.name, slot.slot)

    async def rollback(self) -> None:
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            with contextlib.suppress(Exception):  # a broken connection: the server rolls back
                await transaction.rollback()
