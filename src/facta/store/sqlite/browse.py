"""The console's reads on the SQLite engine (:class:`facta.store.browse.Browser`).

Streams are listed from the ``UNIQUE (stream_id, version)`` index the appends keep anyway: a
range of ids for the prefix, grouped, in order, stopped after a page (SQLite's comparison of
text is binary, so the range is exact).
"""

from __future__ import annotations

from facta.store.base import RecordedEvent
from facta.store.browse import StreamSummary, Totals, prefix_bounds
from facta.store.checkpoints import RelayCheckpoint
from facta.store.sqlite.checkpoints import SQLiteCheckpoints
from facta.store.sqlite.events import SQLiteEventStore
from facta.store.sqlite.writes import COLUMNS, recorded


class SQLiteBrowser:
    """Reads for an operator's console on one SQLite store."""

    def __init__(self, events: SQLiteEventStore, checkpoints: SQLiteCheckpoints) -> None:
        self.events = events
        self.checkpoints = checkpoints
        self.table = f"{events.prefix}events"

    async def streams(self, prefix: str, after: str | None, limit: int) -> list[StreamSummary]:
        low, high = prefix_bounds(prefix)
        # One lower bound: given both, SQLite seeks to the first and filters up to the other.
        if after is not None and after >= low:
            where, values = ["stream_id > ?"], [after]
        else:
            where, values = ["stream_id >= ?"], [low]
        if high is not None:
            where.append("stream_id < ?")
            values.append(high)
        sql = (
            f"SELECT stream_id, max(version) FROM {self.table} WHERE {' AND '.join(where)}"
            " GROUP BY stream_id ORDER BY stream_id LIMIT ?"
        )
        rows = await self.events.rows(sql, [*values, limit])
        return [StreamSummary(s, v) for s, v in rows]

    async def totals(self) -> Totals:
        # The events are the rowids (no gaps but rolled-back appends': counted, not guessed).
        [(events,)] = (await self.events.rows(f"SELECT count(*) FROM {self.table}")).fetchall()
        sql = f"SELECT count(*) FROM (SELECT DISTINCT stream_id FROM {self.table})"
        [(streams,)] = (await self.events.rows(sql)).fetchall()
        return Totals(events, streams)

    async def correlated(self, key: str, limit: int) -> list[RecordedEvent]:
        sql = (
            f"SELECT {COLUMNS} FROM {self.table} WHERE event_id = ?1 OR (instr(metadata, ?2)"
            " AND (json_extract(CAST(metadata AS TEXT), '$.correlation_id') = ?1"
            " OR json_extract(CAST(metadata AS TEXT), '$.command_id') = ?1))"
            " ORDER BY position LIMIT ?3"
        )
        return recorded(await self.events.rows(sql, (key, key.encode(), limit)))

    async def relays(self) -> list[RelayCheckpoint]:
        return await self.checkpoints.rows()
