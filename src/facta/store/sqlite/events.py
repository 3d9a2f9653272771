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
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from facta.store._follow import follow
from facta.store._migrations import (
    require_migrations,
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
    check_hook,
    validate_stream_id,
)
from facta.store.boundaries import AppendCondition
from facta.store.sqlite.connections import connect, locked
from facta.store.sqlite.hooks import HookSuspended
from facta.store.sqlite.schema import applied_migrations, migrate
from facta.store.sqlite.wal import WalCheckpointer
from facta.store.sqlite.writes import COLUMNS, Append, BatchWriter, fail, recorded, start_over

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
        self._pending: list[Append] = []
        self._flushing = False
        self._alone = 0  # appends in a row that led and found nobody to share a commit with
        self._drained: asyncio.Future[None] | None = None
        self._appended = asyncio.Event()
        # Copies the log back ahead of the writer, which would otherwise stall every append
        # for it once per thousand pages written.
        self._checkpointer = WalCheckpointer(path)
        self._writes = BatchWriter(self.prefix)

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
                applied = applied_migrations(path, store.prefix)
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

    async def rows(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        """The rows of a query on this store's reading connection (see :meth:`_rows`)."""
        return await self._rows(sql, parameters)

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
        return migrate(self._connection(), self.prefix)

    # -- appending -----------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
        condition: AppendCondition | None = None,
    ) -> AppendResult:
        """Append (see :class:`~facta.store.base.EventStore`); with ``condition``, only if
        it holds (checked in the append's transaction, under SQLite's one write lock)."""
        validate_stream_id(stream_id)
        if hook is not None:
            check_hook(hook)
        loop = asyncio.get_running_loop()
        request = Append(stream_id, events, expected_version, hook, loop.create_future(), loop=loop)
        request.condition = condition
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

    def _on_writer_thread(self, batch: list[Append], loop: asyncio.AbstractEventLoop) -> None:
        """Write ``batch`` on the writer thread, which may wait for another process's lock."""
        try:
            written = loop.run_in_executor(self._writer, self._write, batch)
        except RuntimeError as exc:  # the writer has been shut down
            self._settle(batch, exc)
            self._flush(loop)
            return
        written.add_done_callback(lambda done: self.written(batch, done, loop))

    def _staging(self) -> sqlite3.Connection:
        """The connection that writes on the event loop: it never waits for a lock."""
        if self._stager is None:
            self._stager = self._connect()
            self._stager.execute("PRAGMA busy_timeout=0")  # a held lock: the thread waits
        return self._stager

    def _write_alone(self, request: Append) -> bool:
        """Write a lone append right here, on the event loop. Returns False, having written
        nothing, when another process holds the write lock: the writer thread waits for it,
        the loop must not (with the busy timeout, it stood still for up to 30 s)."""
        connection = self._staging()
        try:
            self._write([request], connection)
        except sqlite3.Error as exc:  # BEGIN failed: nothing was written
            fail(connection, [request], exc)
        if locked(request.error):
            start_over(connection, [request])
            return False
        return True

    def _stage(self, batch: list[Append], loop: asyncio.AbstractEventLoop) -> bool:
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
        except (sqlite3.OperationalError, HookSuspended):  # BEGIN found the file locked,
            # or a hook suspended: the writer thread does it all
            start_over(connection, batch)
            return False
        if not connection.in_transaction:  # nothing to commit: every append failed
            self._settle(batch, None)
            self._flush(loop)
            return True
        try:
            committed = loop.run_in_executor(self._committer, self._commit, connection, batch)
        except RuntimeError as exc:  # the store has been closed
            fail(connection, batch, exc)
            self._settle(batch, None)
            self._flush(loop)
            return True
        committed.add_done_callback(lambda done: self.written(batch, done, loop))
        return True

    @staticmethod
    def _commit(connection: sqlite3.Connection, batch: list[Append]) -> None:
        """Runs on the commit thread: commits what :meth:`_stage` wrote."""
        try:
            connection.execute("COMMIT")
        except BaseException as exc:
            fail(connection, batch, exc)

    def written(
        self, batch: list[Append], done: asyncio.Future[None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._settle(batch, None if done.cancelled() else done.exception())
        self._flush(loop)

    def _settle(self, batch: list[Append], failure: BaseException | None) -> None:
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
        batch: list[Append],
        connection: sqlite3.Connection | None = None,
        *,
        commit: bool = True,
    ) -> None:
        """Write ``batch`` in one transaction on ``connection`` (by default this thread's);
        with ``commit=False`` a transaction that wrote anything is left open."""
        self._writes.write(batch, connection or self._connection(), commit=commit)

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
            f"SELECT {COLUMNS} FROM {self.prefix}events WHERE stream_id = ? AND version >= ?"
            f" AND version <= ? ORDER BY version {order} LIMIT ?"
        )
        upper = to_version if to_version is not None else 2**62
        rows = await self._rows(
            sql, (stream_id, from_version, upper, -1 if limit is None else limit)
        )
        return recorded(rows)

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
            f"SELECT {COLUMNS} FROM {self.prefix}events WHERE {' AND '.join(where)}"
            " ORDER BY position LIMIT ?"
        )
        parameters.append(limit)
        # Envelopes straight from the cursor: each row tuple is freed as soon as it is
        # unpacked, where a fetched page keeps them all alive and the garbage collector
        # walks them again and again (a tenth of a whole-log read).
        return recorded(await self._rows(sql, parameters))

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
        rows = await self._read(self._writes.sql_version, (stream_id,))
        return int(rows[0][0] or 0)

    async def head(self) -> Position:
        rows = await self._read(f"SELECT max(position) FROM {self.prefix}events")
        return Position(0, rows[0][0] or 0)

    async def find_event(self, event_id: str) -> RecordedEvent | None:
        rows = await self._read(self._writes.sql_by_id, (event_id,))
        return recorded(rows)[0] if rows else None

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
