"""Group commit for the PostgreSQL store: appends that arrive while others are being written
wait and go together, one call of the append function, one transaction, one fsync.

Each request is still checked against its own expected version and succeeds or fails on its
own (the function answers per request). Appends with a transaction hook that takes batches
(inline projections) are batched too, with others carrying the same hook: the hook runs once
for the whole batch inside its transaction; if it fails, the batch is split until the append
that made it fail is alone and gets the error. A batch holds each stream once, and no stream that a
batch in flight writes to, so batches never wait on each other's rows. Up to ``max_flushes``
batches are in flight at once, each on a writer connection of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from facta.errors import (
    AppendConditionFailed,
    DuplicateEventId,
    StoreUnavailable,
    WrongExpectedVersion,
)
from facta.store.base import (
    ANY,
    STREAM_EXISTS,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    Position,
    RecordedEvent,
    TransactionHook,
)
from facta.store.boundaries import AppendCondition
from facta.store.postgres.common import drop_if_lost, lost, recorded, unavailable
from facta.store.postgres.locks import LockKeys
from facta.store.postgres.requests import Request as _Request
from facta.store.postgres.requests import arguments

if TYPE_CHECKING:
    from facta.store.postgres.events import PostgresEventStore

# The append function's statuses.
_APPENDED, _WRONG_VERSION, _REPEATED, _DUPLICATE, _CONDITION_FAILED = range(5)

MAX_BATCH = 500
"""Most appends sent in one transaction."""

_NO_REQUEST: Any = object()


class PostgresTransaction:
    """The transaction handle a hook receives: the append's asyncpg connection, inside its
    open transaction (``await tx.connection.execute(...)``)."""

    __slots__ = ("connection",)

    def __init__(self, connection: asyncpg.Connection | PoolConnectionProxy[Any]) -> None:
        self.connection = connection


class _HookFailed(Exception):
    """A batch's transaction hook raised ``error`` (kept apart from the append's own errors)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


_Outcome = AppendResult | Exception | None  # None: the event ids may be stored already


class GroupCommit:
    """The appending half of a :class:`~facta.store.postgres.PostgresEventStore`."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store
        self.max_flushes = store.max_flushes
        self._pending: list[_Request] = []
        self._busy: set[str] = set()
        self._flushes = 0
        self._lone = True
        self._tasks: set[asyncio.Future[Any]] = set()
        self._idle_writers: list[asyncpg.Connection] = []
        self._keys = LockKeys(f"{store.schema}.{store.prefix}")

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: ExpectedVersion,
        hook: TransactionHook | None = None,
        condition: AppendCondition | None = None,
    ) -> AppendResult:
        """Append with the others that are waiting: one transaction for all of them
        (``hook``: one that takes batches, run once for the batch in that transaction;
        ``condition``: checked in it, after the locks that make it hold, see locks.py)."""
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        request = _Request(stream_id, events, expected, future, hook, condition)
        if self._lone and self._flushes < self.max_flushes and not self._pending and not self._busy:
            # A lone client, by the look of the last batches: write it from this task, which
            # saves a task switch per append. Cancelling it cancels only this append. (When
            # many clients wait on one batch, the first to resume would go alone this way,
            # and the rest after it, so a flush task gathers them instead.)
            self._flushes += 1
            self._busy.add(stream_id)
            try:
                await self._write([request])
            finally:
                self._busy.discard(stream_id)
                self._flushes -= 1
                if self._pending and self._flushes < self.max_flushes:
                    self._flushes += 1
                    self._spawn(self._flush())
            return await future  # done already, unless it lost a race and went back in line
        self._pending.append(request)
        if self._flushes < self.max_flushes:
            self._flushes += 1
            self._spawn(self._flush())
        return await future

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        """Send queued appends, as many per transaction as have queued up meanwhile.

        Runs as its own task, so a caller that is cancelled never cancels the others' appends.
        """
        try:
            while batch := self._take():
                try:
                    await self._write(batch)
                finally:
                    for request in batch:
                        self._busy.discard(request.stream_id)
        finally:
            self._flushes -= 1
            if self._pending and self._flushes < self.max_flushes:
                self._flushes += 1  # requests that waited behind a busy stream
                self._spawn(self._flush())

    def _take(self) -> list[_Request]:
        """The next batch: pending requests in order, but each stream once, none for a stream
        that a batch in flight writes to, and all with the same hook (the others keep their
        place for the next batch)."""
        pending = self._pending
        if not pending:
            return []
        if len(pending) == 1 and not self._busy:
            self._pending = []
            batch = pending
        else:
            batch, taken, kept = [], set(self._busy), []
            hook = _NO_REQUEST
            for request in pending:
                stream = request.stream_id
                if (
                    len(batch) < MAX_BATCH
                    and stream not in taken
                    and (hook is _NO_REQUEST or request.hook is hook)
                ):
                    batch.append(request)
                    hook = request.hook
                else:
                    kept.append(request)
                taken.add(stream)  # also keeps a held-back stream's later requests in order
            self._pending = kept
        for request in batch:
            self._busy.add(request.stream_id)
        return batch

    def _arguments(self, batch: Sequence[_Request], recorded_at: float) -> list[Any]:
        channel = self._store.channel if self._store.notify else None
        return arguments(batch, recorded_at, channel, self._keys)

    async def _write(self, batch: list[_Request]) -> None:
        """One call, one transaction for the whole batch; settles every request's future."""
        recorded_at = time.time()
        arguments = self._arguments(batch, recorded_at)
        self._lone = len(batch) == 1 and not self._pending
        hook = batch[0].hook
        outcomes: list[_Outcome] = []

        async def run_hook(connection: asyncpg.Connection, rows: list[Any]) -> None:
            # Inside the transaction: the batch's appended events through the hook.
            outcomes[:] = self._outcomes(batch, rows, recorded_at)
            records = [e for o in outcomes if isinstance(o, AppendResult) for e in o.events]
            if records and hook is not None:
                try:
                    await hook(PostgresTransaction(connection), records)
                except Exception as exc:
                    if lost(exc):
                        raise
                    raise _HookFailed(exc) from exc

        try:
            rows = await self._call_append(arguments, None if hook is None else run_hook)
        except Exception as exc:
            if isinstance(exc, _HookFailed) and len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc.error)  # the hook's error, as it is
            elif len(batch) > 1 and not lost(exc) and not isinstance(exc, StoreUnavailable):
                # A failing hook, a race with another process, a deadlock, or a request the
                # server refuses: send each half on its own, down to single requests with
                # their own answers.
                half = len(batch) // 2
                await self._write(batch[:half])
                await self._write(batch[half:])
            else:
                await self._settle_failure(batch, exc)
            return
        self._store.listener.wake()  # this process's subscribers need no notification
        if hook is None:
            outcomes = self._outcomes(batch, rows, recorded_at)
        for request, outcome in zip(batch, outcomes, strict=True):
            if request.future.done():
                continue
            result = outcome
            if result is None:
                try:
                    result = await self._resolve(request, None)
                except Exception as exc:
                    result = exc
            if result is None:
                self._pending.append(request)  # ANY lost a race: the next batch retries it
            elif isinstance(result, Exception):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)

    def _outcomes(
        self, batch: Sequence[_Request], rows: list[Any], recorded_at: float
    ) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        for request, row in zip(batch, rows, strict=True):
            try:
                outcomes.append(self._result(request, row, recorded_at))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def _call_append(
        self,
        arguments: list[Any],
        in_transaction: Callable[[asyncpg.Connection, list[Any]], Awaitable[None]] | None = None,
    ) -> list[Any]:
        """Run the append function on a writer connection of its own (no pool: acquiring and
        releasing would cost about as much again as the call); with ``in_transaction``, in a
        transaction that runs it on the answer before committing."""
        for attempt in (1, 2):
            idle = self._idle_writers
            while idle and idle[-1].is_closed():
                idle.pop()
            connection = idle.pop() if idle else await self._store.connect()
            try:
                if in_transaction is None:
                    rows: list[Any] = await connection.fetch(self._store.sql.append, *arguments)
                else:
                    async with connection.transaction():
                        rows = await connection.fetch(self._store.sql.append, *arguments)
                        await in_transaction(connection, rows)
            except BaseException as exc:
                if lost(exc) or not isinstance(exc, Exception):  # lost, or cancelled mid-call
                    connection.terminate()
                else:
                    idle.append(connection)
                if attempt == 1 and isinstance(exc, asyncpg.InternalClientError):
                    continue  # it had died while idle: nothing was sent, so try a fresh one
                raise
            idle.append(connection)
            return rows
        raise AssertionError("unreachable")

    async def _settle_failure(self, batch: list[_Request], exc: Exception) -> None:
        error: Exception = exc
        if lost(exc):
            error = unavailable(exc, self._store.where)
        elif isinstance(exc, asyncpg.UniqueViolationError):
            # Only a lone request gets here: resolve its conflict.
            [request] = batch
            try:
                result = await self._resolve(request, None)
            except Exception as resolved:
                error = resolved
            else:
                if result is None:
                    self._pending.append(request)
                elif not request.future.done():
                    request.future.set_result(result)
                return
        for request in batch:
            if not request.future.done():
                request.future.set_exception(error)

    def _result(self, request: _Request, row: Any, recorded_at: float) -> AppendResult | None:
        """One row of the append function as a result, or None when the events may be stored
        already (read them with :meth:`_resolve`); raises the request's error."""
        status, version, sequences, commit, event_id, detail = row
        stream_id, events = request.stream_id, request.events
        if status == _APPENDED:
            first = version - len(events)
            position = Position
            recorded = tuple(
                RecordedEvent(
                    e.event_id,
                    stream_id,
                    first + n,
                    position(commit, sequence),
                    e.type,
                    e.schema_version,
                    e.data,
                    e.metadata,
                    recorded_at,
                    e.tags,
                )
                for n, (e, sequence) in enumerate(zip(events, sequences, strict=True), 1)
            )
            return AppendResult(stream_id, version, recorded[-1].position, recorded)
        if status == _REPEATED:
            return None
        if status == _DUPLICATE:
            raise DuplicateEventId(event_id, detail)
        if status == _CONDITION_FAILED:
            raise AppendConditionFailed(event_id, Position.parse(detail))
        raise WrongExpectedVersion(stream_id, request.expected, version)

    async def _resolve(self, request: _Request, connection: Any) -> AppendResult | None:
        """After a conflict: the first result if these event ids are stored in this stream
        already (a retry), else DuplicateEventId or WrongExpectedVersion; None when the
        request expects ANY or STREAM_EXISTS and may simply be sent again."""
        stream_id, events = request.stream_id, request.events
        ids = [e.event_id for e in events]
        if connection is None:
            rows = await self._store.fetch(self._store.sql.by_ids, ids)
        else:
            rows = await connection.fetch(self._store.sql.by_ids, ids)
        stored = tuple(recorded(rows))
        for event in stored:
            if event.stream_id != stream_id:
                raise DuplicateEventId(event.event_id, f"in stream {event.stream_id!r}")
        if len(stored) == len(events):
            return AppendResult(stream_id, stored[-1].version, stored[-1].position, stored)
        if stored:
            raise DuplicateEventId(stored[0].event_id, "an earlier append stored it with other ids")
        if request.expected is ANY or request.expected is STREAM_EXISTS:
            return None
        actual = await self._store.stream_version(stream_id)
        raise WrongExpectedVersion(stream_id, request.expected, actual)

    async def append_with_hook(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: ExpectedVersion,
        hook: TransactionHook,
    ) -> AppendResult:
        """Its own transaction: append, run the hook with the connection, commit (or roll
        back on any error, which reaches the caller as it is)."""
        request = _Request(stream_id, events, expected, asyncio.get_running_loop().create_future())
        pool = await self._store.pool()
        while True:
            hook_error: BaseException | None = None  # the hook's errors reach the caller as is
            try:
                async with pool.acquire() as connection:
                    try:
                        async with connection.transaction():
                            recorded_at = time.time()
                            [row] = await connection.fetch(
                                self._store.sql.append, *self._arguments([request], recorded_at)
                            )
                            result = self._result(request, row, recorded_at)
                            if result is None:
                                return await self._resolve_or_fail(request, connection)
                            try:
                                await hook(PostgresTransaction(connection), result.events)
                            except BaseException as exc:
                                hook_error = exc
                                raise
                        self._store.listener.wake()  # committed
                        return result
                    except BaseException as exc:
                        if exc is not hook_error:
                            drop_if_lost(connection, exc)
                        raise
            except asyncpg.UniqueViolationError as exc:
                if exc is hook_error:
                    raise
                resolved = await self._resolve(request, None)
                if resolved is not None:
                    return resolved
            except Exception as exc:
                if exc is not hook_error and lost(exc):
                    raise unavailable(exc, self._store.where) from exc
                raise

    async def _resolve_or_fail(self, request: _Request, connection: Any) -> AppendResult:
        result = await self._resolve(request, connection)
        if result is None:  # pragma: no cover - the function reports a repeat only when stored
            raise DuplicateEventId(request.events[0].event_id, "stored, then gone")
        return result

    async def close(self) -> None:
        """Wait for the appends in flight, then close the writer connections."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        writers, self._idle_writers = self._idle_writers, []
        for writer in writers:
            try:
                async with asyncio.timeout(5):
                    await writer.close()
            except Exception:  # closing a broken connection: nothing left to do
                writer.terminate()
