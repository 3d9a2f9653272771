"""Relay checkpoints of the SQLite engine: a row per relay in ``{prefix}relay_checkpoints``,
held with the engine's lease (see :mod:`facta.store._leases`), written on the engine's side
connections."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from facta.errors import RelayLeaseLost
from facta.store._leases import LeaseSQL, question
from facta.store.base import Position
from facta.store.checkpoints import RelayCheckpoint
from facta.store.sqlite.connections import Connections

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


class SQLiteCheckpoints:
    """Checkpoints and leases of relays, in the SQLite file of the event store."""

    def __init__(self, connections: Connections, prefix: str) -> None:
        self._connections = connections
        self.table = table = f"{prefix}relay_checkpoints"
        self._lease = LeaseSQL(table, ["name"], question)
        self._save = (
            f"UPDATE {table} SET checkpoint_commit = ?4, checkpoint_sequence = ?5,"
            " published = published + ?6, updated_at = ?7, lease_until = ?3"
            f" WHERE {self._lease.held}"
        )

    async def acquire(self, name: str, owner: str, ttl: float) -> RelayCheckpoint | None:
        def work(c: sqlite3.Connection) -> RelayCheckpoint | None:
            now = time.time()
            c.execute(f"INSERT OR IGNORE INTO {self.table} (name) VALUES (?)", (name,))
            if not c.execute(self._lease.take, (name, owner, now + ttl, now)).rowcount:
                return None
            return _row(
                c.execute(f"SELECT {_COLUMNS} FROM {self.table} WHERE name = ?", (name,)).fetchone()
            )

        return await self._connections.write(work)

    async def save(
        self, name: str, owner: str, position: Position, published: int, ttl: float
    ) -> None:
        def work(c: sqlite3.Connection) -> int:
            now = time.time()
            values = (name, owner, now + ttl, position.commit, position.sequence, published, now)
            return c.execute(self._save, values).rowcount

        if not await self._connections.write(work):
            raise RelayLeaseLost(name)

    async def renew(self, name: str, owner: str, ttl: float) -> None:
        def work(c: sqlite3.Connection) -> int:
            return c.execute(self._lease.renew, (name, owner, time.time() + ttl)).rowcount

        if not await self._connections.write(work):
            raise RelayLeaseLost(name)

    async def release(self, name: str, owner: str) -> None:
        await self._connections.write(lambda c: c.execute(self._lease.release, (name, owner)))

    async def get(self, name: str) -> RelayCheckpoint | None:
        sql = f"SELECT {_COLUMNS} FROM {self.table} WHERE name = ?"
        found = await self._connections.run(lambda c: c.execute(sql, (name,)).fetchone())
        if found is None:
            return None
        return _held(_row(found))

    async def rows(self) -> list[RelayCheckpoint]:
        """Every relay's row, by name (for the console)."""
        sql = f"SELECT {_COLUMNS} FROM {self.table} ORDER BY name"
        found = await self._connections.run(lambda c: c.execute(sql).fetchall())
        return [_held(_row(r)) for r in found]

    async def record_error(self, name: str, error: str) -> None:
        sql = f"UPDATE {self.table} SET error = ?2, error_at = ?3 WHERE name = ?1"
        await self._connections.write(lambda c: c.execute(sql, (name, error, time.time())))

    async def close(self) -> None:
        """Nothing to release: the connections are the engine's."""
