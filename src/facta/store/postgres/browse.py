"""The console's reads on the PostgreSQL engine (:class:`facta.store.browse.Browser`).

Streams are listed from the ``UNIQUE (stream_id, version)`` index the appends keep anyway: a
range of ids for the prefix, grouped, in order, stopped after a page. A range is the prefix
only where text sorts by code point (the ``C`` and ``C.UTF-8`` collations, or ``ucs_basic``);
in a database with a linguistic collation, where ``-`` may not even count, the ids are
matched with ``starts_with`` as well (correct, but no longer narrowed by the index).
"""

from __future__ import annotations

from typing import Any

from facta.store.base import RecordedEvent
from facta.store.browse import StreamSummary, Totals, prefix_bounds
from facta.store.checkpoints import RelayCheckpoint
from facta.store.postgres.checkpoints import PostgresCheckpoints
from facta.store.postgres.common import COLUMNS, recorded
from facta.store.postgres.events import PostgresEventStore

_BINARY_COLLATIONS = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"})


class PostgresBrowser:
    """Reads for an operator's console on one PostgreSQL schema."""

    def __init__(self, events: PostgresEventStore, checkpoints: PostgresCheckpoints) -> None:
        self.events = events
        self.checkpoints = checkpoints
        self.table = f"{events.schema}.{events.prefix}events"
        self._binary: bool | None = None

    async def _sorts_binary(self) -> bool:
        if self._binary is None:
            rows = await self.events.fetch(
                "SELECT coalesce(c.collname, d.datcollate) FROM pg_attribute a"
                " JOIN pg_database d ON d.datname = current_database()"
                " LEFT JOIN pg_collation c ON c.oid = a.attcollation"
                " AND c.collname <> 'default'"
                " WHERE a.attrelid = $1::regclass AND a.attname = 'stream_id'",
                self.table,
            )
            self._binary = bool(rows) and rows[0][0] in _BINARY_COLLATIONS
        return self._binary

    async def streams(self, prefix: str, after: str | None, limit: int) -> list[StreamSummary]:
        values: list[Any] = []

        def param(value: Any) -> str:
            values.append(value)
            return f"${len(values)}"

        where = []
        if prefix and await self._sorts_binary():
            low, high = prefix_bounds(prefix)
            where += [f"stream_id >= {param(low)}", f"stream_id < {param(high)}"]
        elif prefix:
            where.append(f"starts_with(stream_id, {param(prefix)})")
        if after is not None:
            where.append(f"stream_id > {param(after)}")
        sql = (
            f"SELECT stream_id, max(version) FROM {self.table}"
            f" WHERE {' AND '.join(where) or 'true'}"
            f" GROUP BY stream_id ORDER BY stream_id LIMIT {param(limit)}"
        )
        rows = await self.events.fetch(sql, *values)
        return [StreamSummary(s, v) for s, v in rows]

    async def totals(self) -> Totals:
        rows = await self.events.fetch(
            f"SELECT (SELECT count(*) FROM {self.table}),"
            f" (SELECT count(*) FROM (SELECT DISTINCT stream_id FROM {self.table}) s)"
        )
        return Totals(int(rows[0][0]), int(rows[0][1]))

    async def correlated(self, key: str, limit: int) -> list[RecordedEvent]:
        # The byte search skips parsing the JSON of every event that cannot match.
        sql = (
            f"SELECT {COLUMNS} FROM {self.table} WHERE event_id = $1 OR"
            " (position($2::bytea IN metadata) > 0"
            " AND (convert_from(metadata, 'UTF8')::jsonb ->> 'correlation_id' = $1"
            " OR convert_from(metadata, 'UTF8')::jsonb ->> 'command_id' = $1))"
            " ORDER BY commit_xid, sequence LIMIT $3"
        )
        return recorded(await self.events.fetch(sql, key, key.encode(), limit))

    async def relays(self) -> list[RelayCheckpoint]:
        return await self.checkpoints.rows()
