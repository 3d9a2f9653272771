"""Data subjects' keys of the SQLite engine: rows of ``{prefix}personal_keys``, on the
engine's side connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from facta.store.keys import SubjectKey
from facta.store.sqlite.connections import Connections, immediate, locked, unsynced

_COLUMNS = "key_id, subject, material, wrapped, created_at"


def _key(row: tuple[str, str, bytes, int, float]) -> SubjectKey:
    return SubjectKey(row[0], row[1], bytes(row[2]), bool(row[3]), row[4])


class SQLiteKeys:
    """The :class:`~facta.store.keys.KeyStore` in the SQLite file of the event store."""

    def __init__(self, connections: Connections, prefix: str) -> None:
        self._connections = connections
        self.table = f"{prefix}personal_keys"
        self._forgets = f"{prefix}personal_forgets"
        self._snapshots = f"{prefix}snapshots"
        self._events = f"{prefix}events"

    async def subject_key(self, candidate: SubjectKey) -> SubjectKey:
        """See :meth:`KeyStore.subject_key`. A new key is committed without an fsync of its
        own: it is asked for to seal an event, whose append commits after it, to the same
        write-ahead log, and that commit's fsync makes every earlier frame of the log durable
        too, the key's among them. So an event is never durable without its key, and opening
        an account (a new subject) costs one fsync, not two. A key whose event never comes
        may be lost in a machine crash; nothing names it then.

        It runs on the event loop (about 0.1 ms for a new key, 30 µs for a stored one), as
        the event store's lone appends do: the hop to a pool thread and back cost more than
        the work (an account's opening took 888 µs, 354 of them in here). On a pool thread
        only when another connection holds the write lock, which the loop must not wait
        for."""
        select = f"SELECT {_COLUMNS} FROM {self.table} WHERE subject = ?"
        insert = (
            f"INSERT OR IGNORE INTO {self.table} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
            f" RETURNING {_COLUMNS}"
        )
        synchronous = self._connections.synchronous

        def work(c: sqlite3.Connection) -> SubjectKey:
            # Read first (it needs no lock): a subject's key is made once and read often.
            found = c.execute(select, (candidate.subject,)).fetchone()
            if found is not None:
                return _key(found)
            k = candidate
            with unsynced(c, synchronous):  # one statement: a transaction of its own, which
                # commits once the statement has run to its end (fetchall, not fetchone)
                made = c.execute(
                    insert, (k.key_id, k.subject, k.material, int(k.wrapped), k.created_at)
                ).fetchall()
            if not made:  # another connection's key came first
                made = c.execute(select, (candidate.subject,)).fetchall()
            return _key(made[0])

        try:
            return work(self._connections.on_loop())
        except sqlite3.OperationalError as exc:
            if not locked(exc):
                raise
        return await self._connections.run(work)

    async def keys(self, key_ids: Sequence[str]) -> list[SubjectKey]:
        ids = list(key_ids)
        marks = ", ".join("?" * len(ids))
        sql = f"SELECT {_COLUMNS} FROM {self.table} WHERE key_id IN ({marks})"
        rows = await self._connections.run(lambda c: c.execute(sql, ids).fetchall())
        return [_key(row) for row in rows]

    async def subject_key_ids(self, subject: str) -> list[str]:
        sql = f"SELECT key_id FROM {self.table} WHERE subject = ?"
        rows = await self._connections.run(lambda c: c.execute(sql, (subject,)).fetchall())
        return [row[0] for row in rows]

    async def delete_keys(self, subject: str) -> list[str]:
        delete = f"DELETE FROM {self.table} WHERE subject = ? RETURNING key_id"
        count = f"UPDATE {self._forgets} SET forgets = forgets + 1"

        def work(c: sqlite3.Connection) -> list[str]:
            # Zeroes the deleted bytes in the file's pages rather than leaving them free.
            c.execute("PRAGMA secure_delete = ON")
            try:
                with immediate(c):
                    deleted = [row[0] for row in c.execute(delete, (subject,)).fetchall()]
                    if deleted:
                        c.execute(count)
            finally:
                c.execute("PRAGMA secure_delete = OFF")
            # The WAL still holds the page as it was: copy it back and empty the WAL now,
            # where no reader holds it (otherwise the next checkpoint will).
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return deleted

        return await self._connections.run(work)

    async def forgets(self) -> int:
        sql = f"SELECT forgets FROM {self._forgets}"
        row = await self._connections.run(lambda c: c.execute(sql).fetchone())
        return int(row[0])

    async def streams_containing(self, needles: Sequence[bytes]) -> list[str]:
        if not needles:
            return []
        where = " OR ".join("instr(data, ?) > 0" for _ in needles)
        sql = f"SELECT DISTINCT stream_id FROM {self._events} WHERE {where} ORDER BY stream_id"
        rows = await self._connections.run(lambda c: c.execute(sql, list(needles)).fetchall())
        return [row[0] for row in rows]

    async def purge_snapshots(self, stream_ids: Sequence[str]) -> int:
        ids = list(stream_ids)
        if not ids:
            return 0
        marks = ", ".join("?" * len(ids))
        sql = f"DELETE FROM {self._snapshots} WHERE stream_id IN ({marks})"
        return await self._connections.write(lambda c: c.execute(sql, ids).rowcount)
