"""Following the PostgreSQL log live: one LISTEN connection per store, which wakes the
subscriptions (facta.store._follow) and runners of this process.

Every append transaction calls ``pg_notify`` on the store's channel, which PostgreSQL delivers
when it commits. Waiters wake on that; while the listening connection is down they poll, with
the back-off the subscription loop gives them, and it is remade at most once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from facta.store.base import Position

if TYPE_CHECKING:
    pass

log = logging.getLogger("facta.store.postgres")


class Listener:
    """One LISTEN connection per store, shared by every waiter; remade when lost."""

    RETRY_AFTER = 1.0
    """Seconds between attempts to remake the connection; waiters poll meanwhile."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        channel: str,
        head: Callable[[], Awaitable[Position]],
        *,
        listen: bool = True,
    ) -> None:
        self._connect = connect
        # False behind a transaction pooler, which cannot keep a LISTEN: waiters poll.
        self._closed = not listen
        self._channel = channel
        self._head = head
        self._connection: asyncpg.Connection | None = None
        self._woken = asyncio.Event()
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self.connects = 0
        """How many times a listening connection was made (a reconnect adds one)."""

    @property
    def pid(self) -> int | None:
        """The server process id of the listening connection, while there is one."""
        connection = self._connection
        return None if connection is None else connection.get_server_pid()

    async def wait(self, after: Position, max_wait: float) -> None:
        """Return when the log's head is past ``after``, at a notification, or after
        ``max_wait`` seconds."""
        woken = self._woken  # taken before the check below, so no wake-up falls in between
        await self._listen()
        if await self._head() > after:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait):
                await woken.wait()

    async def _listen(self) -> bool:
        """Make sure the listening connection is up; False while it cannot be made."""
        if self._connection is not None and not self._connection.is_closed():
            return True
        if self._closed or time.monotonic() < self._retry_at:
            return False
        async with self._lock:
            if self._connection is not None and not self._connection.is_closed():
                return True
            connection = None
            try:
                connection = await self._connect()
                await connection.add_listener(self._channel, self._notified)
            except Exception as exc:  # whatever it is, polling still works
                log.warning("cannot listen for new events, polling instead: %s", exc)
                self._retry_at = time.monotonic() + self.RETRY_AFTER
                if connection is not None:
                    connection.terminate()
                return False
            connection.add_termination_listener(self._lost)
            self._connection = connection
            self.connects += 1
            return True

    def _notified(self, *_: Any) -> None:
        self.wake()

    def _lost(self, connection: Any) -> None:
        if connection is self._connection:
            self._connection = None
        self.wake()  # waiters check the log at once, then poll until a reconnect

    def wake(self) -> None:
        """Wake every waiter (a notification, or this process's own append)."""
        self._woken.set()
        self._woken = asyncio.Event()

    async def close(self) -> None:
        """Stop listening for good."""
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await connection.close()
