"""Hooks on the SQLite engine's writer: an inline projection's work inside an append's
transaction, run right where the transaction is (on the writer thread, or on the event loop
that stages a batch) when it declares it only works on the transaction."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from facta.store.base import RecordedEvent, TransactionHook

if TYPE_CHECKING:
    from facta.store.sqlite.writes import Append


class HookSuspended(BaseException):
    """A hook run on the event loop's own thread suspended: its transaction cannot wait for
    the loop there. (A BaseException, so that no append's error handling takes it for a
    failure of its own: the batch is rolled back and written again on the writer thread.)"""


def drive(work: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Run a hook's coroutine right here (a hook that declares ``runs_in_place`` does only
    synchronous work on the transaction), sparing the round trip through a
    busy event loop that holds the write transaction open. If it suspends after all, the
    rest of it runs on the loop; on the loop's thread itself that cannot be: HookSuspended."""
    try:
        waiting = work.send(None)
    except StopIteration:
        return
    if _running_loop() is loop:
        work.close()
        raise HookSuspended
    asyncio.run_coroutine_threadsafe(_resume(work, waiting), loop).result()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a thread without a loop: the writer
        return None


async def _resume(work: Any, waiting: Any) -> None:
    while True:
        if waiting is None:
            await asyncio.sleep(0)
        else:
            await asyncio.wait([waiting])
        try:
            waiting = work.send(None)
        except StopIteration:
            return


class SQLiteTransaction:
    """The transaction handle a hook receives: the write connection, inside the append's
    transaction. Use it synchronously; the writer thread waits while the hook runs."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement in the append's transaction."""
        return self.connection.execute(sql, parameters)


def shared_batch_hook(batch: list[Append]) -> TransactionHook | None:
    """The hook every append of ``batch`` carries, if it is one and it takes batches."""
    hook = batch[0].hook
    if hook is None or len(batch) == 1 or not hook.takes_batches:
        return None
    return hook if all(request.hook is hook for request in batch) else None


def run_hook(
    hook: TransactionHook,
    connection: sqlite3.Connection,
    records: list[RecordedEvent],
    loop: asyncio.AbstractEventLoop,
) -> None:
    work = hook(SQLiteTransaction(connection), records)
    if hook.runs_in_place:
        drive(work, loop)
    else:
        asyncio.run_coroutine_threadsafe(work, loop).result()  # type: ignore[arg-type]
