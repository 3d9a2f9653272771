"""The SQLite engine's connections: how every one of them is made (:func:`connect`), and the
small pool of threads with a connection each that the read-model store and the relay's
checkpoints share (the event store keeps its own for its hot paths).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def locked(error: BaseException | None) -> bool:
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
            if not locked(exc) or time.monotonic() > deadline:
                connection.close()
                raise
            time.sleep(0.005)
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    return connection


class Connections:
    """Threads with a connection each, to the file at ``path``; :meth:`run` and :meth:`write`
    do work on one of them (SQLite calls block: never on the event loop)."""

    def __init__(self, path: str, synchronous: str, *, threads: int = 2) -> None:
        self.path = path
        self.synchronous = synchronous
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="facta-sqlite-side")
        self._local = threading.local()
        self._open: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._loop_side: sqlite3.Connection | None = None

    def connect(self) -> sqlite3.Connection:
        """A new connection of its own with the store's settings (the caller closes it)."""
        return connect(self.path, self.synchronous)

    def on_loop(self) -> sqlite3.Connection:
        """A connection for short work on the event loop itself, where a hop to a thread
        would cost more than the work: it never waits for a lock (SQLITE_BUSY at once: do the
        work on a thread then, with :meth:`run`) and never checkpoints the write-ahead log
        (the event store's writer and checkpointer do). Closed with the others."""
        if self._loop_side is None:
            connection = self.connect()
            connection.execute("PRAGMA busy_timeout=0")
            connection.execute("PRAGMA wal_autocheckpoint=0")
            with self._lock:
                self._open.append(connection)
            self._loop_side = connection
        return self._loop_side

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self.connect()
            with self._lock:
                self._open.append(connection)
        return connection

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` on a pool thread, in autocommit."""

        def run() -> T:
            return work(self._connection())

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` in a write transaction (``BEGIN IMMEDIATE``: it may wait for
        the write lock), committed if it returns and rolled back if it raises."""

        def run(connection: sqlite3.Connection) -> T:
            with immediate(connection):
                return work(connection)

        return await self.run(run)

    async def close(self) -> None:
        """Close every connection once the work queued before has run."""
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        with self._lock:
            for connection in self._open:
                connection.close()
            self._open.clear()


class _Immediate:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")


@contextlib.contextmanager
def unsynced(connection: sqlite3.Connection, synchronous: str) -> Iterator[None]:
    """A ``with`` block whose commits on ``connection`` are not fsynced (``synchronous=NORMAL``
    in WAL mode), then ``synchronous`` again: for a write that a later synced commit to the
    same write-ahead log makes durable (see ``SQLiteKeys.subject_key``)."""
    connection.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        connection.execute(f"PRAGMA synchronous={synchronous}")


def immediate(connection: sqlite3.Connection) -> _Immediate:
    """A ``with`` block in a write transaction on ``connection``: committed, or rolled back
    when the block raises."""
    return _Immediate(connection)
