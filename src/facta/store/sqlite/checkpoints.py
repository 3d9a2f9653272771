"""Relay checkpoints of the SQLite engine: a row per relay in ``{prefix}relay_checkpoints``.

The lease is the row's ``owner`` and ``lease_until``; a relay renews it with every
checkpoint and while idle, and another takes the row over once it has expired (``ttl``
seconds after its holder died). Writes run on a thread of their own (``BEGIN IMMEDIATE``
may wait for the store's writer).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from facta.errors import RelayLeaseLost
from facta.store.base import Position
from facta.store.checkpoints import RelayCheckpoint

_COLUMNS = "name, checkpoint_commit, checkpoint_sequence, published, updated_at, owner"


class SQLiteCheckpoints:
    """Checkpoints and lease rows in the SQLite file of the event store.

    Writes run on a thread of their own (``BEGIN IMMEDIATE`` may wait for the store's writer).
    """

    def __init__(self, path: str, prefix: str, synchronous: str = "FULL") -> None:
        self.path = path
        self.table = f"{prefix}relay_checkpoints"
        self.synchronous = synchronous
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="facta-relay-checkpoints")
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self.synchronous}")
            connection.execute("PRAGMA busy_timeout=30000")
            self._connection = connection
        return self._connection

    async def _run(self, work: Any, *arguments: Any) -> Any:
        def run() -> Any:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection, *arguments)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def acquire(self, name: str, owner: str, ttl: float) -> RelayCheckpoint | None:
        def work(c: sqlite3.Connection) -> RelayCheckpoint | None:
            now = time.time()
            c.execute(f"INSERT OR IGNORE INTO {self.table} (name) VALUES (?)", (name,))
            taken = c.execute(
                f"UPDATE {self.table} SET owner = ?, lease_until = ?"
                " WHERE name = ? AND (owner IS NULL OR owner = ? OR lease_until <= ?)",
                (owner, now + ttl, name, owner, now),
            ).rowcount
            if not taken:
                return None
            row = c.execute(
                f"SELECT {_COLUMNS}, lease_until FROM {self.table} WHERE name = ?", (name,)
            ).fetchone()
            return _row(row)

        result: RelayCheckpoint | None = await self._run(work)
        return result

    async def save(
        self, name: str, owner: str, position: Position, published: int, ttl: float
    ) -> None:
        def work(c: sqlite3.Connection) -> int:
            now = time.time()
            return c.execute(
                f"UPDATE {self.table} SET checkpoint_commit = ?, checkpoint_sequence = ?,"
                " published = published + ?, updated_at = ?, lease_until = ?"
                " WHERE name = ? AND owner = ?",
                (position.commit, position.sequence, published, now, now + ttl, name, owner),
            ).rowcount

        if not await self._run(work):
            raise RelayLeaseLost(name)

    async def renew(self, name: str, owner: str, ttl: float) -> None:
        def work(c: sqlite3.Connection) -> int:
            return c.execute(
                f"UPDATE {self.table} SET lease_until = ? WHERE name = ? AND owner = ?",
                (time.time() + ttl, name, owner),
            ).rowcount

        if not await self._run(work):
            raise RelayLeaseLost(name)

    async def release(self, name: str, owner: str) -> None:
        def work(c: sqlite3.Connection) -> None:
            c.execute(
                f"UPDATE {self.table} SET owner = NULL, lease_until = 0"
                " WHERE name = ? AND owner = ?",
                (name, owner),
            )

        await self._run(work)

    async def get(self, name: str) -> RelayCheckpoint | None:
        def work(c: sqlite3.Connection) -> Any:
            return c.execute(
                f"SELECT {_COLUMNS}, lease_until FROM {self.table} WHERE name = ?", (name,)
            ).fetchone()

        row = await self._run(work)
        return _row(row) if row else None

    async def close(self) -> None:
        def work() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(self._executor, work)
        self._executor.shutdown(wait=True)


def _row(row: Any) -> RelayCheckpoint:
    return RelayCheckpoint(row[0], Position(row[1], row[2]), row[3], row[4], row[5], *row[6:])
