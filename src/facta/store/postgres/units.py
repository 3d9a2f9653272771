"""Units of work on the PostgreSQL engine's read models: a runner's worker (claim, lease,
switch) with its batches, and an inline projection's writes inside an append's
transaction."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from facta.errors import LeaseLost
from facta.store import _documents_sql as _sql
from facta.store._slots_sql import advance_values
from facta.store.documents import DocumentSpec
from facta.store.postgres.slots import SLOT_COLUMNS, TYPES, slot_row
from facta.store.read_models import (
    Batch,
    SlotRow,
    Unit,
    plan_claim,
)

if TYPE_CHECKING:
    from facta.store.postgres.read_models import PostgresReadModels


class PostgresWorker:
    """A runner's connection for one projection.

    None of its transactions may wait on the runner for longer than the lease: the server
    ends one that does (``idle_in_transaction_session_timeout``). A runner paused or cut off
    in the middle of a commit would otherwise keep its checkpoint's row locked, so that no
    runner could take the partition over (and, the name's lock held by the claim that waits
    for it, no other partition of the projection either) until it came back, and then commit
    after its lease had run out. Not covered: a runner stopped in the middle of a statement's
    messages (preparing one it runs for the first time on this connection, in its first
    batch), which the server waits for without a timeout.
    """

    def __init__(self, backend: PostgresReadModels, connection: asyncpg.Connection) -> None:
        self.backend = backend
        self.connection = connection
        self.ttl = 10.0

    async def limit_idle(self) -> None:
        """Let the server end this connection's transaction if it waits for the runner for
        longer than the lease (for this transaction only: nothing is kept in the session)."""
        milliseconds = max(1, round(self.ttl * 1000))
        await self.connection.execute(
            f"SET LOCAL idle_in_transaction_session_timeout = {milliseconds}"
        )

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
        b, c = self.backend, self.connection
        self.ttl = ttl
        async with c.transaction():
            await self.limit_idle()
            # Claims of one name take turns, so two runners never create two slots.
            await b.lock_name(c, name)
            rows = [
                slot_row(r)
                for r in await c.fetch(
                    f"SELECT {SLOT_COLUMNS} FROM {b.slots_table} WHERE name = $1", name
                )
            ]
            now = time.time()
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
                created = await b.insert_slot(
                    c,
                    name,
                    version,
                    spec,
                    state,
                    owner,
                    plan[1],
                    ttl,
                    partitions=partitions,
                    mine=partition,
                )
                return created[partition]
            row = next(r for r in rows if r.slot == plan[1] and r.partition == partition)
            row.owner, row.lease_until = owner, now + ttl
            await c.execute(b.lease.take, name, row.slot, partition, owner, row.lease_until, now)
            return row

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
        b, c = self.backend, self.connection
        self.ttl = ttl
        async with c.transaction():
            await self.limit_idle()
            await b.lock_name(c, name)
            await self._sweep(name)
            active = await c.fetchval(
                f"SELECT count(*) FROM {b.slots_table} WHERE name = $1 AND active", name
            )
            state = "rebuilding" if active else "running"
            return await b.insert_slot(
                c,
                name,
                version,
                spec,
                state,
                owner,
                not active,
                ttl,
                partitions=partitions,
                mine=None,
            )

    async def _sweep(self, name: str, *, abandoned: bool = True) -> None:
        """Drop ``name``'s slots that are out of use: retired ones nobody pins any more, and
        (``abandoned``) earlier rebuilds whose leases nobody holds any more. In a
        transaction holding the name's lock."""
        b, c = self.backend, self.connection
        for number, retired, held in await c.fetch(
            f"SELECT slot, bool_and(state = 'retired'),"
            " bool_or(owner IS NOT NULL AND lease_until > $2)"
            f" FROM {b.slots_table} WHERE name = $1 AND NOT active GROUP BY slot",
            name,
            time.time(),
        ):
            if retired:
                await b.retire_or_drop(c, name, number)
            elif abandoned and not held:
                await b.drop_slot(c, name, number)

    async def renew(self, slot: SlotRow, owner: str, ttl: float) -> bool:
        status = await self.connection.execute(
            self.backend.lease.renew + " AND state <> 'failed'",
            slot.name,
            slot.slot,
            slot.partition,
            owner,
            time.time() + ttl,
        )
        return bool(status == "UPDATE 1")

    async def release(self, slot: SlotRow, owner: str) -> None:
        # On the pool, not the worker's connection: a runner cancelled in the middle of a
        # batch leaves that one mid-query or in an aborted transaction, and a lease not
        # given back keeps the next runner waiting for it to run out.
        await self.backend.fetch(
            self.backend.lease.release, slot.name, slot.slot, slot.partition, owner
        )

    def unit(self, slot: SlotRow, spec: DocumentSpec[Any]) -> Unit:
        return BatchUnit(
            self.connection, self.backend.table(slot.name, slot.slot), spec, self, slot
        )

    async def switch(self, slot: SlotRow, owner: str) -> bool:
        b, c = self.backend, self.connection
        async with c.transaction():
            await self.limit_idle()
            # Switches take turns with each other and with claims (two rebuilds finishing at
            # once would each make their slot the active one).
            await b.lock_name(c, slot.name)
            row = await c.fetchrow(
                f"SELECT active, state FROM {b.slots_table} WHERE name = $1 AND slot = $2"
                " AND part = $3 AND owner = $4 FOR UPDATE",
                slot.name,
                slot.slot,
                slot.partition,
                owner,
            )
            if row is None or row["state"] not in ("rebuilding", "ready", "running"):
                raise LeaseLost(slot.name, slot.slot, slot.partition)
            if row["active"]:
                return True  # another partition's switch made it so
            await c.execute(
                f"UPDATE {b.slots_table} SET state = 'ready'"
                " WHERE name = $1 AND slot = $2 AND part = $3",
                slot.name,
                slot.slot,
                slot.partition,
            )
            behind = await c.fetchval(
                f"SELECT count(*) FROM {b.slots_table} WHERE name = $1 AND slot = $2"
                " AND state <> 'ready'",
                slot.name,
                slot.slot,
            )
            if behind:
                return False
            for r in await c.fetch(
                f"SELECT DISTINCT slot FROM {b.slots_table} WHERE name = $1 AND active", slot.name
            ):
                await b.retire_or_drop(c, slot.name, r[0])
            await c.execute(
                f"UPDATE {b.slots_table} SET active = true, state = 'running'"
                " WHERE name = $1 AND slot = $2",
                slot.name,
                slot.slot,
            )
            await self._sweep(slot.name, abandoned=False)
            return True

    async def close(self) -> None:
        await self.connection.close()


class BatchUnit:
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
        types = ["text", "bytea", *[TYPES[spec.kinds[f]] for f in spec.indexes]]
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
            await self.worker.limit_idle()

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
        slot = self.slot
        now = time.time()
        status = await self._connection.execute(
            self.worker.backend.advance,
            *advance_values(slot, batch, now + self.worker.ttl, now),
        )
        if status != "UPDATE 1":
            raise LeaseLost(slot.name, slot.slot, slot.partition)

    async def rollback(self) -> None:
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            with contextlib.suppress(Exception):  # a broken connection: the server rolls back
                await transaction.rollback()
