"""The SQLite event store: the embedded default, one file, no server.

Durability: WAL mode with ``synchronous=FULL`` by default, so an acknowledged append has been
fsynced and survives a crash of the process or the machine. ``synchronous=NORMAL`` (URL
``?synchronous=NORMAL``) skips the fsync per commit: still safe against a process crash, but a
power loss may drop the last commits. It is several times faster on slow disks.

Concurrency: appends queue for one writer. An append that finds the writer idle yields one
turn of the event loop, so every append that is ready by then joins its batch. A batch of one
is written inline, the commonest (one event at a known version) as a single statement that
checks and inserts; a larger batch is committed as one transaction (one fsync: group commit)
on the writer thread while the loop keeps queueing the next batch. Each append in a batch has
its own savepoint and its own expected-version check. Reads run inline on their own
connection, which WAL lets read while the writer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facta.errors import DuplicateEventId, StoreSetupError, WrongExpectedVersion
from facta.store._follow import follow
from facta.store._migrations import (
    migration_files,
    require_migrations,
    statements,
    validate_identifier,
)
from facta.store.base import (
    ANY,
    START,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    Position,
    RecordedEvent,
    Snapshot,
    TransactionHook,
    category_of,
    check_expected_version,
    check_hook,
    validate_stream_id,
)
from facta.store.sqlite.wal import WalCheckpointer

_COLUMNS = (
    "event_id, stream_id, version, position, type, schema_version, data, metadata, recorded_at"
)


def _recorded(rows: Iterable[Any]) -> list[RecordedEvent]:
    # The hot loop of every read: unpacking rows builds envelopes about twice as fast as
    # indexing them.
    envelope, position = RecordedEvent, Position
    return [
        envelope(i, s, v, position(0, p), t, sv, d, m, r) for i, s, v, p, t, sv, d, m, r in rows
    ]


def _written(
    event: NewEvent, stream_id: str, version: int, rowid: int, now: float
) -> RecordedEvent:
    """The envelope of an event just inserted as row ``rowid``."""
    return RecordedEvent(
        event.event_id,
        stream_id,
        version,
        Position(0, rowid),
        event.type,
        event.schema_version,
        event.data,
        event.metadata,
        now,
    )


class _HookSuspended(BaseException):
    """A hook run on the event loop's own thread suspended: its transaction cannot wait for
    the loop there. (A BaseException, so that no append's error handling takes it for a
    failure of its own: the batch is rolled back and written again on the writer thread.)"""


def _drive(work: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Run a hook's coroutine right here (a hook that declares ``runs_in_place`` does only
    synchronous work on the transaction), sparing the round trip through a
    busy event loop that holds the write transaction open. If it suspends after all, the
    rest of it runs on the loop; on the loop's thread itself that cannot be: _HookSuspended."""
    try:
        waiting = work.send(None)
    except StopIteration:
        return
    if _running_loop() is loop:
        work.close()
        raise _HookSuspended
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


@dataclass(slots=True)
class _Append:
    stream_id: str
    events: Sequence[NewEvent]
    expected: ExpectedVersion
    hook: TransactionHook | None
    future: asyncio.Future[AppendResult]
    result: AppendResult | None = None
    error: BaseException | None = None
    loop: asyncio.AbstractEventLoop | None = field(default=None)
    repeated: bool = False  # the result is an earlier append's (its events are stored already)


def _start_over(connection: sqlite3.Connection, batch: list[_Append]) -> None:
    """Roll back what was written of ``batch`` and forget its outcomes, to write it again."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    for request in batch:
        request.result = request.error = None
        request.repeated = False


def _fail(connection: sqlite3.Connection, batch: list[_Append], error: BaseException) -> None:
    """Roll back ``batch``, whose transaction failed: each append fails (with its own error,
    if it had one)."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    for request in batch:
        request.result = None
        request.error = request.error or error


def _locked(error: BaseException | None) -> bool:
    """Whether ``error`` says another connection holds the lock the write needed."""
    return (
        isinstance(error, sqlite3.OperationalError)
        and error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
    )


BUSY_TIMEOUT = 30.0
"""Seconds a connection waits for another's lock before it gives up with "database is locked"."""


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    """A connection to the SQLite file at ``path`` in WAL mode, in autocommit, usable from
    any thread, waiting up to :data:`BUSY_TIMEOUT` for locks.

    Several processes may open a new file at once: each turns it to WAL mode, which needs the
    file to itself, and SQLite answers a connection that asks while another holds it with
    "database is locked" at once (its busy handler would deadlock there, so it is not called).
    That is retried here until the timeout, as any other wait for a lock.
    """
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
    )
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or time.monotonic() > deadline:
                connection.close()
                raise
            time.sleep(0.005)
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    return connection


def _shared_batch_hook(batch: list[_Append]) -> TransactionHook | None:
    """The hook every append of ``batch`` carries, if it is one and it takes batches."""
    hook = batch[0].hook
    if hook is None or len(batch) == 1 or not hook.takes_batches:
        return None
    return hook if all(request.hook is hook for request in batch) else None


def _applied(path: str, prefix: str) -> set[int] | None:
    """The migrations recorded in the SQLite file at ``path`` (None: it has no migrations
    table), read without creating or changing anything; StoreSetupError if there is no
    SQLite database there."""
    if not os.path.isfile(path):
        raise StoreSetupError(f"no SQLite file at {path!r}", "create a store with `facta migrate`")
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            table = f"{prefix}schema_migrations"
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if found is None:
                return None
            return {row[0] for row in connection.execute(f"SELECT version FROM {table}")}
    except sqlite3.DatabaseError as exc:
        raise StoreSetupError(
            f"{path!r} is not a SQLite database ({exc})", "check the path of the store"
        ) from None


SOLO_PROBE = 16
"""An append that leads a group commit first gives the event loop a turn, so that the appends
ready to run can join it. After this many appends in a row that found nobody there, it skips
that turn (for a writer on its own it costs ~15 µs, a fifth of a command) but for every this
many-th, which looks again: a burst of concurrent appends is back to sharing commits after at
most this many written alone."""


class SQLiteEventStore:
    """An EventStore in one SQLite file. Open it with :meth:`open` (creates the schema)."""

    def __init__(
        self,
        path: str,
        *,
        prefix: str = "",
        synchronous: str = "FULL",
    ) -> None:
        self.path = path
        self.prefix = validate_identifier(prefix, "table prefix", allow_empty=True)
        if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise ValueError(f"synchronous must be FULL, NORMAL, EXTRA or OFF, not {synchronous!r}")
        self.synchronous = synchronous.upper()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="facta-sqlite-writer")
        # Commits what the loop staged (see _stage). Not the writer thread: a write queued
        # there ahead of the COMMIT would wait for the lock the staged transaction holds.
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="facta-sqlite-commit")
        self._reader: sqlite3.Connection | None = None
        self._stager: sqlite3.Connection | None = None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._pending: list[_Append] = []
        self._flushing = False
        self._alone = 0  # appends in a row that led and found nobody to share a commit with
        self._drained: asyncio.Future[None] | None = None
        self._appended = asyncio.Event()
        # Copies the log back ahead of the writer, which would otherwise stall every append
        # for it once per thousand pages written.
        self._checkpointer = WalCheckpointer(path)
        p = self.prefix
        self._sql_version = f"SELECT max(version) FROM {p}events WHERE stream_id = ?"
        self._sql_insert = (
            f"INSERT INTO {p}events (event_id, stream_id, category, version, type,"
            " schema_version, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        # The version check rides in the VALUES: a stream found elsewhere makes the version
        # NULL, which the NOT NULL constraint refuses. (Not INSERT ... SELECT ... WHERE: a
        # SELECT that reads the table it inserts into is copied into a temporary table
        # first, which made the statement take twice as long.)
        self._sql_insert_at = (
            f"INSERT INTO {p}events (event_id, stream_id, category, version, type,"
            " schema_version, data, metadata, recorded_at) VALUES (?, ?, ?,"
            f" CASE WHEN (SELECT coalesce(max(version), 0) FROM {p}events WHERE stream_id = ?)"
            " = ? THEN ? END, ?, ?, ?, ?, ?)"
        )
        self._sql_by_id = f"SELECT {_COLUMNS} FROM {p}events WHERE event_id = ?"

    @classmethod
    async def open(cls, path: str, *, create: bool = True, **options: Any) -> SQLiteEventStore:
        """Open (creating the file and migrating the schema if needed) the store at ``path``.

        With ``create=False`` nothing is created or migrated: the file must hold a facta
        store with every migration applied, else StoreSetupError (read-only tools use this,
        so that a typo in a path never leaves an empty store behind).
        """
        store = cls(path, **options)
        try:
            if create:
                await store.migrate()
            else:
                applied = _applied(path, store.prefix)
                require_migrations("facta.store.sqlite", applied, f"the SQLite file {path!r}")
        except BaseException:
            await store.close()
            raise
        return store

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = connect(self.path, self.synchronous)
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (one per writer or reader thread)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    async def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        return (await self._rows(sql, parameters)).fetchall()

    async def _rows(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        # Reads run inline on the event loop: an indexed read of a local file costs less
        # than handing it to a thread and back, and in WAL mode it never waits for the writer.
        if self._reader is None:
            self._reader = self._connect()
        return self._reader.execute(sql, parameters)

    # -- schema --------------------------------------------------------------------------

    async def migrate(self) -> list[int]:
        """Apply the migrations this file lacks; returns the versions applied. Safe to run
        from several processes at once (each migration runs under the write lock)."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._migrate)

    def _migrate(self) -> list[int]:
        connection = self._connection()
        table = f"{self.prefix}schema_migrations"
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table}"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        applied = []
        for version, name, sql in migration_files("facta.store.sqlite"):
            connection.execute("BEGIN IMMEDIATE")
            try:
                done = connection.execute(
                    f"SELECT 1 FROM {table} WHERE version = ?", (version,)
                ).fetchone()
                if not done:
                    for statement in statements(sql, prefix=self.prefix):
                        connection.execute(statement)
                    connection.execute(
                        f"INSERT INTO {table} VALUES (?, ?, ?)", (version, name, time.time())
                    )
                    applied.append(version)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return applied

    # -- appending -----------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
    ) -> AppendResult:
        validate_stream_id(stream_id)
        if hook is not None:
            check_hook(hook)
        loop = asyncio.get_running_loop()
        request = _Append(
            stream_id, events, expected_version, hook, loop.create_future(), loop=loop
        )
        self._pending.append(request)
        if self._flushing:  # a batch is being written or gathered: this append goes next
            return await request.future
        # This append leads the next batch: one turn of the loop lets every append that is
        # ready to run join it.
        self._flushing = True
        alone = self._alone
        if hook is not None or alone < SOLO_PROBE or alone % SOLO_PROBE == 0:
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                self._pending.remove(request)
                self._flush(loop)
                raise
        if len(self._pending) == 1 and hook is None:
            # Alone: nobody to share the commit with, so it is written right here (no
            # thread hand-off, no waiting on the future), unless the file is locked.
            self._alone += 1
            self._pending = []
            if self._write_alone(request):
                self._settle([request], None)
                self._flush(loop)
                return request.future.result()
            self._on_writer_thread([request], loop)
            return await request.future
        self._alone = 0
        self._flush(loop)
        return await request.future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit the appends that have queued up: a lone one inline, a batch staged here and
        committed on a thread (or all of it on the writer thread), after which the appends
        that queued up meanwhile go next."""
        batch, self._pending = self._pending, []
        if not batch:
            self._flushing = False
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
            return
        if len(batch) == 1 and batch[0].hook is None:
            if self._write_alone(batch[0]):
                self._settle(batch, None)
                self._flush(loop)
                return
        elif self._stage(batch, loop):
            return
        self._on_writer_thread(batch, loop)

    def _on_writer_thread(self, batch: list[_Append], loop: asyncio.AbstractEventLoop) -> None:
        """Write ``batch`` on the writer thread, which may wait for another process's lock."""
        try:
            written = loop.run_in_executor(self._writer, self._write, batch)
        except RuntimeError as exc:  # the writer has been shut down
            self._settle(batch, exc)
            self._flush(loop)
            return
        written.add_done_callback(lambda done: self._written(batch, done, loop))

    def _staging(self) -> sqlite3.Connection:
        """The connection that writes on the event loop: it never waits for a lock."""
        if self._stager is None:
            self._stager = self._connect()
            self._stager.execute("PRAGMA busy_timeout=0")  # a held lock: the thread waits
        return self._stager

    def _write_alone(self, request: _Append) -> bool:
        """Write a lone append right here, on the event loop. Returns False, having written
        nothing, when another process holds the write lock: the writer thread waits for it,
        the loop must not (with the busy timeout, it stood still for up to 30 s)."""
        connection = self._staging()
        try:
            self._write([request], connection)
        except sqlite3.Error as exc:  # BEGIN failed: nothing was written
            _fail(connection, [request], exc)
        if _locked(request.error):
            _start_over(connection, [request])
            return False
        return True

    def _stage(self, batch: list[_Append], loop: asyncio.AbstractEventLoop) -> bool:
        """Write the batch's statements here, on the event loop, and leave only its COMMIT
        (the fsync) to a thread. Written there, every statement had to win the GIL
        back from the loop after SQLite released it: under 64 HTTP clients a single-event
        append took ~73 µs on the writer thread instead of ~8 µs, and the writer, not the
        CPU, set the pace.

        Returns False, having written nothing, when the thread must do it all: another
        process holds the write lock (the thread may wait for it, the loop must not), a hook
        needs the loop while its transaction is open, or one suspended after all.
        """
        if any(request.hook is not None and not request.hook.runs_in_place for request in batch):
            return False
        connection = self._staging()
        try:
            self._write(batch, connection, commit=False)
        except (sqlite3.OperationalError, _HookSuspended):  # BEGIN found the file locked,
            # or a hook suspended: the writer thread does it all
            _start_over(connection, batch)
            return False
        if not connection.in_transaction:  # nothing to commit: every append failed
            self._settle(batch, None)
            self._flush(loop)
            return True
        try:
            committed = loop.run_in_executor(self._committer, self._commit, connection, batch)
        except RuntimeError as exc:  # the store has been closed
            _fail(connection, batch, exc)
            self._settle(batch, None)
            self._flush(loop)
            return True
        committed.add_done_callback(lambda done: self._written(batch, done, loop))
        return True

    @staticmethod
    def _commit(connection: sqlite3.Connection, batch: list[_Append]) -> None:
        """Runs on the commit thread: commits what :meth:`_stage` wrote."""
        try:
            connection.execute("COMMIT")
        except BaseException as exc:
            _fail(connection, batch, exc)

    def _written(
        self, batch: list[_Append], done: asyncio.Future[None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._settle(batch, None if done.cancelled() else done.exception())
        self._flush(loop)

    def _settle(self, batch: list[_Append], failure: BaseException | None) -> None:
        """Answer each append of a written batch (``failure``: the writer itself failed)."""
        wrote = False
        for request in batch:
            if request.future.done():  # its caller was cancelled meanwhile
                continue
            error = request.error or failure
            if error is not None:
                request.future.set_exception(error)
            else:
                assert request.result is not None
                request.future.set_result(request.result)
                wrote = wrote or bool(request.result.events)
        if wrote:
            self._appended.set()
            self._appended = asyncio.Event()
            self._checkpointer.nudge()

    def _write(
        self,
        batch: list[_Append],
        connection: sqlite3.Connection | None = None,
        *,
        commit: bool = True,
    ) -> None:
        """One transaction for the whole batch, on ``connection`` (by default this thread's);
        with ``commit=False`` a transaction that wrote anything is left open for the caller."""
        connection = connection or self._connection()
        if commit and len(batch) == 1 and self._write_one_statement(connection, batch[0]):
            return
        hook = _shared_batch_hook(batch)
        if hook is not None and self._write_with_batch_hook(connection, batch, hook, commit):
            return
        isolate = len(batch) > 1
        connection.execute("BEGIN IMMEDIATE")
        try:
            for request in batch:
                if isolate and self._write_one_statement(connection, request, in_batch=True):
                    continue  # a failed statement writes nothing: no savepoint needed
                if isolate:
                    connection.execute("SAVEPOINT append")
                try:
                    request.result = self._append_one(connection, request)
                except Exception as exc:
                    request.error = exc
                    if isolate:
                        connection.execute("ROLLBACK TO append")
                    else:
                        connection.execute("ROLLBACK")
                        return
                if isolate:
                    connection.execute("RELEASE append")
            if commit:
                connection.execute("COMMIT")
        except _HookSuspended:
            raise  # the caller rolls back and hands the batch to the writer thread
        except BaseException as exc:
            _fail(connection, batch, exc)

    def _write_with_batch_hook(
        self,
        connection: sqlite3.Connection,
        batch: list[_Append],
        hook: TransactionHook,
        commit: bool = True,
    ) -> bool:
        """The batch in one transaction with its hook run once for all of its new events.
        If the hook fails, nothing is kept and False returned: the batch is then written
        with the hook run per append, so that only the append that makes it fail fails."""
        connection.execute("BEGIN IMMEDIATE")
        try:
            records: list[RecordedEvent] = []
            for request in batch:
                if self._write_one_statement(connection, request, in_batch=True, hooked=True):
                    assert request.result is not None
                    records.extend(request.result.events)
                    continue
                connection.execute("SAVEPOINT append")
                try:
                    result = self._append_one(connection, request, run_hook=False)
                except Exception as exc:
                    request.error = exc
                    connection.execute("ROLLBACK TO append")
                else:
                    request.result = result
                    if not request.repeated:
                        records.extend(result.events)
                connection.execute("RELEASE append")
            if records:
                assert batch[0].loop is not None
                self._run_hook(hook, connection, records, batch[0].loop)
            if commit:
                connection.execute("COMMIT")
            return True
        except Exception:
            _start_over(connection, batch)
            return False

    @staticmethod
    def _run_hook(
        hook: TransactionHook,
        connection: sqlite3.Connection,
        records: list[RecordedEvent],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        work = hook(SQLiteTransaction(connection), records)
        if hook.runs_in_place:
            _drive(work, loop)
        else:
            asyncio.run_coroutine_threadsafe(work, loop).result()  # type: ignore[arg-type]

    def _write_one_statement(
        self,
        connection: sqlite3.Connection,
        request: _Append,
        *,
        in_batch: bool = False,
        hooked: bool = False,
    ) -> bool:
        """The commonest append, one event at a known version, as one statement that checks
        the version and inserts. Alone, it is its own transaction: a third of the round
        trips of BEGIN, check, insert, COMMIT; in a batch, it needs no savepoint, since a
        statement that fails writes nothing. Returns False, having written nothing, for
        anything else and for every unusual outcome (a conflict, a repeated event id), which
        the general path then sorts out. ``hooked``: the caller runs the hook itself."""
        expected, events = request.expected, request.events
        if (request.hook is not None and not hooked) or len(events) != 1:
            return False
        if type(expected) is not int:
            return False
        if expected < 0:
            return False
        event, stream_id, now = events[0], request.stream_id, time.time()
        try:
            cursor = connection.execute(
                self._sql_insert_at,
                (
                    event.event_id,
                    stream_id,
                    category_of(stream_id),
                    stream_id,
                    expected,
                    expected + 1,
                    event.type,
                    event.schema_version,
                    event.data,
                    event.metadata,
                    now,
                ),
            )
        except sqlite3.IntegrityError:  # the stream is elsewhere, or the event id is taken
            return False
        except Exception as exc:
            if in_batch:  # not this append's fault (a full disk, say): the batch fails
                raise
            request.error = exc
            return True
        assert cursor.lastrowid is not None
        recorded = _written(event, stream_id, expected + 1, cursor.lastrowid, now)
        request.result = AppendResult(stream_id, expected + 1, recorded.position, (recorded,))
        return True

    def _append_one(
        self, connection: sqlite3.Connection, request: _Append, *, run_hook: bool = True
    ) -> AppendResult:
        stream_id, events = request.stream_id, request.events
        actual = connection.execute(self._sql_version, (stream_id,)).fetchone()[0] or 0
        try:
            check_expected_version(stream_id, request.expected, actual)
        except WrongExpectedVersion:
            # A repeated append usually finds the stream moved on by its first try.
            if events and connection.execute(self._sql_by_id, (events[0].event_id,)).fetchone():
                request.repeated = True
                return self._repeat(connection, stream_id, events)
            raise
        if not events:
            last = connection.execute(f"SELECT max(position) FROM {self.prefix}events").fetchone()
            return AppendResult(stream_id, actual, Position(0, last[0] or 0), ())
        now = time.time()
        category = category_of(stream_id)
        recorded = []
        insert = self._sql_insert
        for offset, event in enumerate(events, 1):
            version = actual + offset
            try:
                cursor = connection.execute(
                    insert,
                    (
                        event.event_id,
                        stream_id,
                        category,
                        version,
                        event.type,
                        event.schema_version,
                        event.data,
                        event.metadata,
                        now,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                # Not looked up beforehand: the unique index finds a repeat for free. Only
                # the first event's id can start a repeat (nothing of this append is written).
                if offset == 1:
                    request.repeated = True
                    return self._repeat(connection, stream_id, events)
                raise DuplicateEventId(event.event_id, str(exc)) from None
            assert cursor.lastrowid is not None
            recorded.append(_written(event, stream_id, version, cursor.lastrowid, now))
        if request.hook is not None and run_hook:
            assert request.loop is not None
            self._run_hook(request.hook, connection, recorded, request.loop)
        last = recorded[-1]
        return AppendResult(stream_id, last.version, last.position, tuple(recorded))

    def _repeat(
        self, connection: sqlite3.Connection, stream_id: str, events: Sequence[NewEvent]
    ) -> AppendResult:
        """The result of the first append of these event ids, or DuplicateEventId."""
        stored = []
        for event in events:
            row = connection.execute(self._sql_by_id, (event.event_id,)).fetchone()
            if row is None or row[1] != stream_id:
                where = "not all of them" if row is None else f"in stream {row[1]!r}"
                raise DuplicateEventId(event.event_id, f"an earlier append stored {where}")
            stored.extend(_recorded([row]))
        return AppendResult(stream_id, stored[-1].version, stored[-1].position, tuple(stored))

    # -- reading -------------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        order = "DESC" if backwards else "ASC"
        sql = (
            f"SELECT {_COLUMNS} FROM {self.prefix}events WHERE stream_id = ? AND version >= ?"
            f" AND version <= ? ORDER BY version {order} LIMIT ?"
        )
        upper = to_version if to_version is not None else 2**62
        rows = await self._rows(
            sql, (stream_id, from_version, upper, -1 if limit is None else limit)
        )
        return _recorded(rows)

    async def read_all(
        self,
        *,
        after: Position = START,
        limit: int = 1000,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        wait_for_held_back: bool = True,  # one writer: nothing is ever held back here
    ) -> list[RecordedEvent]:
        where = ["position > ?"]
        parameters: list[Any] = [after.sequence]
        if categories:
            where.append(f"category IN ({', '.join('?' * len(categories))})")
            parameters.extend(categories)
        if types:
            where.append(f"type IN ({', '.join('?' * len(types))})")
            parameters.extend(types)
        sql = (
            f"SELECT {_COLUMNS} FROM {self.prefix}events WHERE {' AND '.join(where)}"
            " ORDER BY position LIMIT ?"
        )
        parameters.append(limit)
        # Envelopes straight from the cursor: each row tuple is freed as soon as it is
        # unpacked, where a fetched page keeps them all alive and the garbage collector
        # walks them again and again (a tenth of a whole-log read).
        return _recorded(await self._rows(sql, parameters))

    def subscribe(
        self,
        *,
        after: Position = START,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        return follow(self, after=after, categories=categories, types=types, batch_size=batch_size)

    async def stream_version(self, stream_id: str) -> int:
        rows = await self._read(self._sql_version, (stream_id,))
        return int(rows[0][0] or 0)

    async def head(self) -> Position:
        rows = await self._read(f"SELECT max(position) FROM {self.prefix}events")
        return Position(0, rows[0][0] or 0)

    async def find_event(self, event_id: str) -> RecordedEvent | None:
        rows = await self._read(self._sql_by_id, (event_id,))
        return _recorded(rows)[0] if rows else None

    # -- snapshots -----------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        sql = f"INSERT OR REPLACE INTO {self.prefix}snapshots VALUES (?, ?, ?, ?, ?)"
        row = (
            snapshot.stream_id,
            snapshot.version,
            snapshot.schema_version,
            snapshot.data,
            snapshot.recorded_at,
        )

        def run() -> None:
            self._connection().execute(sql, row)

        await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def load_snapshot(
        self,
        stream_id: str,
        *,
        max_version: int | None = None,
        max_recorded_at: float | None = None,
    ) -> Snapshot | None:
        sql = (
            "SELECT stream_id, version, schema_version, data, recorded_at"
            f" FROM {self.prefix}snapshots"
            " WHERE stream_id = ? AND version <= ? AND recorded_at <= ?"
            " ORDER BY version DESC LIMIT 1"
        )
        rows = await self._read(
            sql,
            (
                stream_id,
                2**62 if max_version is None else max_version,
                float("inf") if max_recorded_at is None else max_recorded_at,
            ),
        )
        return Snapshot(*rows[0]) if rows else None

    # -- waiting and closing -------------------------------------------------------------

    async def wait_for_events(self, after: Position, max_wait: float) -> None:
        """Wake on this process's appends at once; notice other processes' commits by a
        cheap check of the log's head every 50 ms."""
        deadline = time.monotonic() + max_wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or await self.head() > after:
                return
            try:
                async with asyncio.timeout(min(remaining, 0.05)):
                    await self._appended.wait()
                return
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self._flushing:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        self._writer.shutdown(wait=True)
        self._committer.shutdown(wait=True)
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        await asyncio.to_thread(self._checkpointer.close)
