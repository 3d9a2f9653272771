"""Pages of the PostgreSQL log read before they are asked for: a reader going through the
log keeps the server and itself busy at once."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class ReadAhead:
    """Pages of the log fetched before they are asked for, a few readers' worth.

    Only a full page is used: the visibility rule makes it final (no transaction can still
    commit a row inside it), so it is what the same read would return later. A short page may
    not be, so a read at the log's end always asks the server afresh.
    """

    SLOTS = 8

    def __init__(self) -> None:
        self._pages: dict[tuple[Any, ...], asyncio.Task[list[Any]]] = {}

    def start(self, key: tuple[Any, ...], fetch: Coroutine[Any, Any, list[Any]]) -> None:
        while len(self._pages) >= self.SLOTS:  # readers that went away: drop the oldest
            self._pages.pop(next(iter(self._pages))).cancel()
        task = asyncio.get_running_loop().create_task(fetch)
        task.add_done_callback(consume_error)
        self._pages[key] = task

    async def take(self, key: tuple[Any, ...], limit: int) -> list[Any] | None:
        task = self._pages.pop(key, None)
        if task is None:
            return None
        try:
            rows = await task
        except Exception:  # the read proper will meet (and report) the problem again
            return None
        return rows if len(rows) == limit else None

    def clear(self) -> None:
        for task in self._pages.values():
            task.cancel()
        self._pages.clear()


def consume_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved here, so an unused page's failure is not logged as lost
