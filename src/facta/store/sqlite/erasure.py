"""Erasure on the SQLite engine: a stream's older events deleted with their rows of
``{prefix}event_tags``, snapshots deleted, the log's size from ``dbstat``, and ``VACUUM``.

Deletes run on the engine's side connections, in a write transaction (``BEGIN IMMEDIATE``) as
every other write of theirs, so they take SQLite's one write lock in turn with the appends.
They run with ``secure_delete`` on: erasure is what legal deletion builds on, and the deleted
bytes are zeroed in the file's pages rather than left in free space. The write-ahead log still
holds the pages as they were before, so it is copied back and emptied straight after (as
:meth:`~facta.store.sqlite.keys.SQLiteKeys.delete_keys` does).

Positions are never reused: a row's position is its rowid, which SQLite hands out as one more
than the largest, and the row with the largest is the last event of its stream, which is never
erased. An erased event's id, on the other hand, is free again: appending an event with it
stores a new event at the stream's next version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

from facta.store.erasure import LogSize
from facta.store.sqlite.connections import Connections, immediate
from facta.store.sqlite.tags import split

T = TypeVar("T")

_NO_LIMIT = 2**62


class SQLiteEraser:
    """The :class:`~facta.store.erasure.Eraser` of the SQLite file of the event store."""

    def __init__(self, connections: Connections, prefix: str) -> None:
        self._connections = connections
        self._events = events = f"{prefix}events"
        self._tags = tags = f"{prefix}event_tags"
        self._snapshots = f"{prefix}snapshots"
        self._version = f"SELECT coalesce(max(version), 0) FROM {events} WHERE stream_id = ?"
        self._erased = f"SELECT position, tags FROM {events} WHERE stream_id = ? AND version < ?"
        self._delete_tag = f"DELETE FROM {tags} WHERE tag = ? AND position = ?"
        self._delete = f"DELETE FROM {events} WHERE stream_id = ? AND version < ?"

    async def erase_events(self, stream_id: str, before_version: int) -> int:
        if before_version <= 1:
            return 0

        return await self._securely(lambda c: self._erase(c, stream_id, before_version))

    async def erase_many(self, spans: Sequence[tuple[str, int]]) -> int:
        wanted = [(stream_id, before) for stream_id, before in spans if before > 1]
        return await self._securely(lambda c: sum(self._erase(c, *span) for span in wanted))

    def _erase(self, c: sqlite3.Connection, stream_id: str, before_version: int) -> int:
        """Inside the caller's transaction: its ValueError rolls every erasure of it back."""
        version = c.execute(self._version, (stream_id,)).fetchone()[0]
        if before_version > version:
            raise ValueError(
                f"cannot erase the events of {stream_id!r} before version"
                f" {before_version}: its version is {version}, and its last event is"
                " never erased"
            )
        rows = c.execute(self._erased, (stream_id, before_version)).fetchall()
        tagged = [(tag, position) for position, tags in rows for tag in split(tags)]
        c.executemany(self._delete_tag, tagged)
        deleted: int = c.execute(self._delete, (stream_id, before_version)).rowcount
        return deleted

    async def delete_snapshots(self, stream_id: str, before_version: int | None = None) -> int:
        sql = f"DELETE FROM {self._snapshots} WHERE stream_id = ? AND version < ?"
        below = _NO_LIMIT if before_version is None else before_version
        # Securely too: a snapshot holds what the events it was taken from held.
        return await self._securely(lambda c: c.execute(sql, (stream_id, below)).rowcount)

    async def _securely(self, work: Callable[[sqlite3.Connection], int]) -> int:
        """``work`` in a write transaction with ``secure_delete`` on, the write-ahead log
        emptied after it if it deleted anything; what it returns."""

        def run(c: sqlite3.Connection) -> int:
            c.execute("PRAGMA secure_delete = ON")
            try:
                with immediate(c):
                    deleted = work(c)
            finally:
                c.execute("PRAGMA secure_delete = OFF")
            if deleted:
                # Copy the zeroed pages back and empty the log, which still holds them as
                # they were (otherwise they stay there until the next checkpoint wraps).
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return deleted

        return await self._connections.run(run)

    async def log_size(self) -> LogSize:
        def measure(c: sqlite3.Connection) -> LogSize:
            [(events,)] = c.execute(f"SELECT count(*) FROM {self._events}").fetchall()
            [(pages,)] = c.execute("PRAGMA page_count").fetchall()
            [(page_size,)] = c.execute("PRAGMA page_size").fetchall()
            total = pages * page_size
            try:
                table, index = self._split(c)
            except sqlite3.OperationalError:  # no dbstat in this build of SQLite
                table, index = total, 0
            return LogSize(events=events, table_bytes=table, index_bytes=index, total_bytes=total)

        return await self._connections.run(measure)

    def _split(self, c: sqlite3.Connection) -> tuple[int, int]:
        """The bytes of the pages of the events and tags tables, and of their indexes, from
        the ``dbstat`` table (which reads the b-trees named, on each call)."""
        sql = (
            "SELECT s.type, sum(d.pgsize) FROM sqlite_schema s JOIN dbstat d ON d.name = s.name"
            " WHERE s.tbl_name IN (?, ?) GROUP BY s.type"
        )
        sizes = dict(c.execute(sql, (self._events, self._tags)).fetchall())
        return sizes.get("table", 0), sizes.get("index", 0)

    async def compact(self) -> None:
        def vacuum(c: sqlite3.Connection) -> None:
            # VACUUM takes the write lock itself (appends wait for it) and cannot run in a
            # transaction: the side connections are in autocommit between their writes.
            c.execute("VACUUM")
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

        await self._connections.run(vacuum)
