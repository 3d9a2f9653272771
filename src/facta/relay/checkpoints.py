"""Where a relay keeps its checkpoint, and the lease that keeps one relay per destination.

One row per relay name (the destination) in ``{prefix}relay_checkpoints``, in the event
store's own database (migration ``0003_relay``):

- SQLite: the lease is the row's ``owner`` and ``lease_until``; a relay renews it with every
  checkpoint and while idle, and another takes the row over once it has expired (``ttl``
  seconds after its holder died). A checkpoint is only written while the writer still owns
  the row, so a relay that lost its lease cannot move it.
- PostgreSQL: a session advisory lock on the relay's own connection; the checkpoint is
  written on that connection, so a relay whose connection (and lock) is gone cannot move it,
  and when a relay process dies the server frees the lock at once.
- Memory: a dict per store, for tests and the in-process default.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from facta.errors import FactaError
from facta.store.base import START, EventStore, Position


class RelayLeaseLost(FactaError):
    """Another relay holds this destination now (or this one's lease connection failed); the
    checkpoint was not moved."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"relay {name!r} is no longer held by this process")


@dataclass(slots=True)
class RelayCheckpoint:
    """A relay's row: its checkpoint, how many events it published, and who holds it."""

    name: str
    position: Position
    published: int
    updated_at: float | None
    owner: str | None
    lease_until: float = 0.0


class CheckpointStore(Protocol):
    """Checkpoints and leases of relays, in one event store's database."""

    async def acquire(self, name: str, owner: str, ttl: float) -> RelayCheckpoint | None:
        """Take the lease of relay ``name`` for ``owner`` (creating its row at START) and
        return its row; None while another relay holds it."""
        ...

    async def save(
        self, name: str, owner: str, position: Position, published: int, ttl: float
    ) -> None:
        """Move the checkpoint to ``position`` (adding ``published``) and renew the lease.

        Raises RelayLeaseLost (writing nothing) if ``owner`` no longer holds it."""
        ...

    async def renew(self, name: str, owner: str, ttl: float) -> None:
        """Keep the lease while idle; raises RelayLeaseLost if it is gone."""
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up (another relay may take over at once)."""
        ...

    async def get(self, name: str) -> RelayCheckpoint | None:
        """The row of relay ``name``, if it ever ran."""
        ...

    async def close(self) -> None: ...


def checkpoints_for(store: EventStore) -> CheckpointStore:
    """The checkpoint store in ``store``'s database. Raises TypeError for another backend."""
    from facta.store.memory import MemoryEventStore
    from facta.store.sqlite import SQLiteEventStore

    if isinstance(store, MemoryEventStore):
        return MemoryCheckpoints(store)
    if isinstance(store, SQLiteEventStore):
        return SQLiteCheckpoints(store.path, store.prefix, store.synchronous)
    if type(store).__module__ == "facta.store.postgres":
        from facta.relay._postgres import PostgresCheckpoints
        from facta.store.postgres import PostgresEventStore

        assert isinstance(store, PostgresEventStore)
        return PostgresCheckpoints(store.dsn, store.schema, store.prefix)
    raise TypeError(f"no relay checkpoints for {type(store).__name__}")


_memory_rows: weakref.WeakKeyDictionary[Any, dict[str, RelayCheckpoint]] = (
    weakref.WeakKeyDictionary()
)


class MemoryCheckpoints:
    """Checkpoints of relays of one in-memory store (shared by every relay on it)."""

    def __init__(self, store: Any) -> None:
        self._rows = _memory_rows.setdefault(store, {})

    async def acquire(self, name: str, owner: str, ttl: float) -> RelayCheckpoint | None:
        now = time.time()
        row = self._rows.setdefault(name, RelayCheckpoint(name, START, 0, None, None))
        if row.owner not in (None, owner) and row.lease_until > now:
            return None
        row.owner, row.lease_until = owner, now + ttl
        return RelayCheckpoint(name, row.position, row.published, row.updated_at, owner, now + ttl)

    async def save(
        self, name: str, owner: str, position: Position, published: int, ttl: float
    ) -> None:
        row = self._held(name, owner)
        row.position, row.published = position, row.published + published
        row.updated_at = time.time()
        row.lease_until = row.updated_at + ttl

    async def renew(self, name: str, owner: str, ttl: float) -> None:
        self._held(name, owner).lease_until = time.time() + ttl

    async def release(self, name: str, owner: str) -> None:
        row = self._rows.get(name)
        if row is not None and row.owner == owner:
            row.owner, row.lease_until = None, 0.0

    async def get(self, name: str) -> RelayCheckpoint | None:
        return self._rows.get(name)

    async def close(self) -> None:
        pass

    def _held(self, name: str, owner: str) -> RelayCheckpoint:
        row = self._rows.get(name)
        if row is None or row.owner != owner:
            raise RelayLeaseLost(name)
        return row


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
