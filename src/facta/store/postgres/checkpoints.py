"""Relay checkpoints of the PostgreSQL engine: a row per relay in
``{schema}.{prefix}relay_checkpoints``, held with the engine's lease (see
:mod:`facta.store._leases`) and written on the store's own pool."""

from __future__ import annotations

import time
from typing import Any

from facta.errors import RelayLeaseLost
from facta.store._leases import LeaseSQL, dollar
from facta.store.base import Position
from facta.store.checkpoints import RelayCheckpoint
from facta.store.postgres.events import PostgresEventStore

_COLUMNS = (
    "name, checkpoint_commit, checkpoint_sequence, published, updated_at, owner, lease_until,"
    " error, error_at"
)


def _row(row: Any) -> RelayCheckpoint:
    position = Position(row[1], row[2])
    return RelayCheckpoint(row[0], position, row[3], row[4], row[5], row[6], row[7], row[8])


def _held(row: RelayCheckpoint) -> RelayCheckpoint:
    if row.lease_until <= time.time():  # a holder that stopped renewing holds nothing
        row.owner = None
    return row


class PostgresCheckpoints:
    """Checkpoints and leases of relays, in the schema of one PostgresEventStore."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store
        self.table = table = f"{store.schema}.{store.prefix}relay_checkpoints"
        self._lease = LeaseSQL(table, ["name"], dollar)
        self._save = (
            f"UPDATE {table} SET checkpoint_commit = $4, checkpoint_sequence = $5,"
            f" published = published + $6, updated_at = $7, lease_until = $3"
            f" WHERE {self._lease.held}"
        )

    async def acquire(self, name: str, owner: str, ttl: float) -> RelayCheckpoint | None:
        fetch, now = self._store.fetch, time.time()
        await fetch(f"INSERT INTO {self.table} (name) VALUES ($1) ON CONFLICT DO NOTHING", name)
        taken = await fetch(
            self._lease.take + f" RETURNING {_COLUMNS}", name, owner, now + ttl, now
        )
        return _row(taken[0]) if taken else None

    async def save(
        self, name: str, owner: str, position: Position, published: int, ttl: float
    ) -> None:
        now = time.time()
        done = await self._store.fetch(
            self._save + " RETURNING 1",
            name,
            owner,
            now + ttl,
            position.commit,
            position.sequence,
            published,
            now,
        )
        if not done:
            raise RelayLeaseLost(name)

    async def renew(self, name: str, owner: str, ttl: float) -> None:
        done = await self._store.fetch(
            self._lease.renew + " RETURNING 1", name, owner, time.time() + ttl
        )
        if not done:
            raise RelayLeaseLost(name)

    async def release(self, name: str, owner: str) -> None:
        await self._store.fetch(self._lease.release, name, owner)

    async def get(self, name: str) -> RelayCheckpoint | None:
        rows = await self._store.fetch(f"SELECT {_COLUMNS} FROM {self.table} WHERE name = $1", name)
        if not rows:
            return None
        return _held(_row(rows[0]))

    async def rows(self) -> list[RelayCheckpoint]:
        """Every relay's row, by name (for the console)."""
        rows = await self._store.fetch(f"SELECT {_COLUMNS} FROM {self.table} ORDER BY name")
        return [_held(_row(r)) for r in rows]

    async def record_error(self, name: str, error: str) -> None:
        sql = f"UPDATE {self.table} SET error = $2, error_at = $3 WHERE name = $1"
        await self._store.fetch(sql, name, error, time.time())

    async def close(self) -> None:
        """Nothing to release: the pool is the store's."""
