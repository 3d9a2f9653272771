"""Per-key asyncio locks that exist only while someone holds or waits for them."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class KeyedLocks:
    """Mutual exclusion per key, costing one dict lookup when uncontended.

    ``async with locks.hold(key): ...``; waiters are served in arrival order.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}

    def hold(self, key: str) -> _Held:
        """A context manager holding the lock for ``key``."""
        return _Held(self, key)

    async def _acquire(self, key: str) -> None:
        queue = self._waiters.get(key)
        if queue is None:
            self._waiters[key] = deque()
            return
        waiter = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(key)  # handed the lock as we were cancelled: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def _release(self, key: str) -> None:
        queue = self._waiters[key]
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        del self._waiters[key]


class _Held:
    __slots__ = ("key", "locks")

    def __init__(self, locks: KeyedLocks, key: str) -> None:
        self.locks = locks
        self.key = key

    async def __aenter__(self) -> None:
        await self.locks._acquire(self.key)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.locks._release(self.key)
