"""Relay checkpoints on PostgreSQL: a row per relay, held with a session advisory lock.

Internal (see :mod:`facta.relay.checkpoints`). Each relay name has its own connection: the
lock lives as long as it, and every checkpoint write goes through it, so a write that
succeeds was made by the lock's holder.
"""

from __future__ import annotations

import contextlib
import time

import asyncpg

from facta.errors import RelayLeaseLost
from facta.store.base import Position
from facta.store.checkpoints import RelayCheckpoint

_COLUMNS = "name, checkpoint_commit, checkpoint_sequence, published, updated_at, owner"


class PostgresCheckpoints:
    """Checkpoints in ``{schema}.{prefix}relay_checkpoints``; leases are advisory locks."""

    def __init__(self, dsn: str, schema: str, prefix: str) -> None:
        self.dsn = dsn
        self.table = f"{schema}.{prefix}relay_checkpoints"
        self._key = f"facta.relay.{schema}.{prefix}"
        self._held: dict[str, asyncpg.Connection] = {}

    async def _connect(self) -> asyncpg.Connection:
        connection: asyncpg.Connection = await asyncpg.connect(
            self.dsn,
            timeout=10,
            server_settings={"application_name": "facta-relay", "jit": "off"},
        )
        return connection

    async def acquire(self, name: str, owner: str, ttl: float) -> RelayCheckpoint | None:
        connection = self._held.get(name)
        if connection is None or connection.is_closed():
            connection = await self._connect()
            got = await connection.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", self._key + name
            )
            if not got:
                await connection.close()
                return None
            self._held[name] = connection
        row = await connection.fetchrow(
            f"INSERT INTO {self.table} (name, owner) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner"
            f" RETURNING {_COLUMNS}",
            name,
            owner,
        )
        assert row is not None
        return RelayCheckpoint(
            row[0], Position(row[1], row[2]), row[3], row[4], row[5], time.time() + ttl
        )

    async def save(
        self, name: str, owner: str, position: Position, published: int, ttl: float
    ) -> None:
        connection = self._connection(name)
        try:
            done = await connection.execute(
                f"UPDATE {self.table} SET checkpoint_commit = $2, checkpoint_sequence = $3,"
                " published = published + $4, updated_at = $5 WHERE name = $1 AND owner = $6",
                name,
                position.commit,
                position.sequence,
                published,
                time.time(),
                owner,
            )
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            await self._drop(name)
            raise RelayLeaseLost(name) from exc
        if done != "UPDATE 1":
            raise RelayLeaseLost(name)

    async def renew(self, name: str, owner: str, ttl: float) -> None:
        connection = self._connection(name)
        try:
            await connection.fetchval("SELECT 1")
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            await self._drop(name)
            raise RelayLeaseLost(name) from exc

    async def release(self, name: str, owner: str) -> None:
        connection = self._held.get(name)
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await connection.execute(
                    f"UPDATE {self.table} SET owner = NULL WHERE name = $1 AND owner = $2",
                    name,
                    owner,
                )
        await self._drop(name)

    async def get(self, name: str) -> RelayCheckpoint | None:
        connection = await self._connect()
        try:
            row = await connection.fetchrow(
                f"SELECT {_COLUMNS} FROM {self.table} WHERE name = $1", name
            )
            # The lock is the truth: a relay that was killed leaves its name in the row.
            free = await connection.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", self._key + name
            )
        finally:
            await connection.close()  # frees the lock if this took it
        if row is None:
            return None
        owner = None if free else row[5]
        return RelayCheckpoint(row[0], Position(row[1], row[2]), row[3], row[4], owner)

    async def close(self) -> None:
        for name in list(self._held):
            await self._drop(name)

    def _connection(self, name: str) -> asyncpg.Connection:
        connection = self._held.get(name)
        if connection is None or connection.is_closed():
            raise RelayLeaseLost(name)
        return connection

    async def _drop(self, name: str) -> None:
        connection = self._held.pop(name, None)
        if connection is not None:
            # Closing the session frees its advisory lock.
            with contextlib.suppress(Exception):
                await connection.close(timeout=5)
