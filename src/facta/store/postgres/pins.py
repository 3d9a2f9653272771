"""Pins of read-model slots on PostgreSQL: shared advisory locks on a connection of their own.

Internal. A process that writes a slot in its appends holds a shared session advisory lock on
the slot's pin key for as long as it does; whoever would drop the slot first tries the same
key exclusively in its transaction, and retires the slot instead when that fails. The server
releases the locks of a connection that ends with it, so a process that dies pins nothing.
If the connection is lost while the process lives, it is made again and every pin taken
anew (until then a switch may drop a slot this process writes: it then answers errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from facta._retry import backoff

log = logging.getLogger("facta.projections")

_LOCK = "SELECT pg_advisory_lock_shared(hashtextextended($1, 0))"
_UNLOCK = "SELECT pg_advisory_unlock_shared(hashtextextended($1, 0))"


class Pins:
    """The pin keys one backend holds, on one connection."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self._keys: set[str] = set()
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._restoring: asyncio.Task[None] | None = None
        self._closed = False

    async def add(self, key: str) -> None:
        """Hold ``key`` shared (waits while a transaction holds it exclusively); holding it
        already changes nothing (one :meth:`remove` lets it go)."""
        async with self._lock:
            if key in self._keys:
                return
            connection = await self._ready()
            await connection.execute(_LOCK, key)
            self._keys.add(key)

    async def remove(self, key: str) -> None:
        """Stop holding ``key``."""
        async with self._lock:
            self._keys.discard(key)
            if self._connection is not None and not self._connection.is_closed():
                await self._connection.execute(_UNLOCK, key)

    async def _ready(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            connection = await self._connect()
            for key in self._keys:
                await connection.execute(_LOCK, key)
            connection.add_termination_listener(self._lost)
            self._connection = connection
        return self._connection

    def _lost(self, connection: object) -> None:
        if self._closed or connection is not self._connection or self._restoring is not None:
            return
        self._restoring = asyncio.get_running_loop().create_task(self._restore())

    async def _restore(self) -> None:
        failures = 0
        try:
            while not self._closed:
                try:
                    async with self._lock:
                        if self._keys:
                            await self._ready()
                    return
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("read-model pins lost with their connection: %s", exc)
                    failures += 1
                    await asyncio.sleep(backoff(failures))
        finally:
            self._restoring = None

    async def close(self) -> None:
        """Release every pin."""
        self._closed = True
        if self._restoring is not None:
            self._restoring.cancel()
            with contextlib.suppress(BaseException):
                await self._restoring
        async with self._lock:
            self._keys.clear()
            if self._connection is not None:
                connection, self._connection = self._connection, None
                with contextlib.suppress(Exception):
                    await connection.close()
