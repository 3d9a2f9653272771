"""Erasure on the PostgreSQL engine: a stream's older events deleted with their rows of
``{prefix}event_tags`` in one statement, snapshots deleted, the log's size from the server's
size functions, and ``VACUUM FULL`` of the log's tables.

Deleting rows leaves the log's order and its readers' rule as they were: readers return rows
in (commit_xid, sequence) order of transactions older than every one still running, and a
deleted row only drops out of what they return; it never makes one sort in front of a position
already passed. The stream's last event is never deleted, so its version, which appends read
as the largest version stored, never goes back. An erased event's id is free again: appending
an event with it stores a new event at the stream's next version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from facta.store.erasure import LogSize
from facta.store.postgres.common import LOST, lost, unavailable
from facta.store.postgres.events import PostgresEventStore

COMPACT_TIMEOUT = 24 * 3600.0
"""Seconds ``VACUUM FULL`` may take: it rewrites the whole log, so it is bounded only against
a server gone for good, not by the store's ``command_timeout``."""

_NO_LIMIT = 2**62


class PostgresEraser:
    """The :class:`~facta.store.erasure.Eraser` in the schema of one PostgresEventStore."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store
        t = f"{store.schema}.{store.prefix}"
        self._events = events = f"{t}events"
        self._tags = tags = f"{t}event_tags"
        self._snapshots = f"{t}snapshots"
        # One statement, so one transaction, and one snapshot for the check and the deletes.
        # The tags' rows are found by their key, (tag, commit_xid, sequence), from the tags
        # the deleted events carried in their own rows. The stream's version checked in the
        # same statement: appends only ever raise it, so an erase never removes a last event.
        self._erase = (
            f"WITH stream AS (SELECT coalesce(max(version), 0) AS version FROM {events}"
            " WHERE stream_id = $1),"
            f" erased AS (DELETE FROM {events} e USING stream"
            " WHERE e.stream_id = $1 AND e.version < $2 AND $2 <= stream.version"
            " RETURNING e.commit_xid, e.sequence, e.tags),"
            f" untagged AS (DELETE FROM {tags} g USING (SELECT unnest(tags) AS tag, commit_xid,"
            " sequence FROM erased) x"
            " WHERE g.tag = x.tag AND g.commit_xid = x.commit_xid AND g.sequence = x.sequence)"
            " SELECT stream.version, (SELECT count(*) FROM erased) FROM stream"
        )
        self._delete_snapshots = (
            f"WITH deleted AS (DELETE FROM {self._snapshots}"
            " WHERE stream_id = $1 AND version < $2 RETURNING 1) SELECT count(*) FROM deleted"
        )
        # pg_table_size counts a table's TOAST (where large events' data goes) and its maps,
        # pg_indexes_size its indexes; the total is their sum, pg_total_relation_size.
        self._size = (
            f"SELECT (SELECT count(*) FROM {events}),"
            " pg_table_size($1::text::regclass) + pg_table_size($2::text::regclass),"
            " pg_indexes_size($1::text::regclass) + pg_indexes_size($2::text::regclass),"
            " pg_total_relation_size($1::text::regclass)"
            " + pg_total_relation_size($2::text::regclass)"
        )

    async def erase_events(self, stream_id: str, before_version: int) -> int:
        if before_version <= 1:
            return 0
        [(version, erased)] = await self._store.fetch(self._erase, stream_id, before_version)
        if before_version > version:
            raise ValueError(
                f"cannot erase the events of {stream_id!r} before version {before_version}:"
                f" its version is {version}, and its last event is never erased"
            )
        return int(erased)

    async def erase_many(self, spans: Sequence[tuple[str, int]]) -> int:
        wanted = [(stream_id, before) for stream_id, before in spans if before > 1]
        if not wanted:
            return 0
        pool = await self._store.pool()
        try:
            async with pool.acquire() as connection, connection.transaction():
                erased = 0
                for stream_id, before_version in wanted:
                    [(version, count)] = await connection.fetch(
                        self._erase, stream_id, before_version
                    )
                    if before_version > version:  # raised inside: the transaction rolls back
                        raise ValueError(
                            f"cannot erase the events of {stream_id!r} before version"
                            f" {before_version}: its version is {version}, and its last"
                            " event is never erased"
                        )
                    erased += int(count)
                return erased
        except Exception as exc:
            if lost(exc):
                raise unavailable(exc, self._store.where) from exc
            raise

    async def delete_snapshots(self, stream_id: str, before_version: int | None = None) -> int:
        below = _NO_LIMIT if before_version is None else before_version
        [(deleted,)] = await self._store.fetch(self._delete_snapshots, stream_id, below)
        return int(deleted)

    async def log_size(self) -> LogSize:
        [(events, table, index, total)] = await self._store.fetch(
            self._size, self._events, self._tags
        )
        return LogSize(
            events=int(events),
            table_bytes=int(table),
            index_bytes=int(index),
            total_bytes=int(total),
        )

    async def compact(self) -> None:
        """``VACUUM FULL`` (and ANALYZE, the planner's statistics of the smaller tables) of
        the events and tags tables: it rewrites them and their indexes without the space
        of deleted rows, holding an exclusive lock on each table while it does (appends and
        reads wait, and fail if that outlasts the store's ``command_timeout``)."""
        # VACUUM cannot run in a transaction block: on a connection of its own, in autocommit.
        connection = await self._store.connect()
        try:
            await connection.execute(
                f"VACUUM (FULL, ANALYZE) {self._events}, {self._tags}", timeout=COMPACT_TIMEOUT
            )
        except Exception as exc:
            if lost(exc):
                raise unavailable(exc, self._store.where) from exc
            raise
        finally:
            with contextlib.suppress(*LOST):
                await connection.close(timeout=5)
