"""Consistency boundaries on PostgreSQL: reads by query through the tag index, and appends
whose condition is checked inside the append function, after advisory locks.

Why a condition holds (DESIGN.md, contract 7). Each append takes, before it checks or writes
anything, advisory transaction locks (see :mod:`facta.store.postgres.locks`): shared ones for
every (type, tag) key its events can be selected by, exclusive ones for the keys of its
condition's query; all in ascending key order, so no two transactions wait on each other in a
cycle. Its condition is then checked by a statement that starts after those locks are
granted, so it sees every transaction that wrote a matching event and ended before (locks are
released only after a commit is visible), over every committed row, held back or not; and no
transaction can write a matching event until this one ends, since such a writer needs a key
this one holds exclusively. Two conditional appends that each would invalidate the other
share a key, exclusively: one waits for the other, then sees its events and fails. Appends
that share no exclusive key (disjoint tags, plain appends of other types) never wait.

Positions: a read returns only events below its snapshot's xmin (the log's gap-safe rule), so
every event committing after the read has a higher position than the one it returns; a
condition naming that position therefore misses nothing that commits later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from facta.store.base import Position, RecordedEvent
from facta.store.boundaries import Query, QueryItem, TaggedEvents, TaggedLog
from facta.store.postgres.common import COLUMNS
from facta.store.postgres.events import PostgresEventStore

# Each row says whether readers may see it yet (the log's visibility rule): the last column.
_VISIBLE = "e.commit_xid < pg_snapshot_xmin(pg_current_snapshot()) AS visible"
_VISIBLE_COLUMN = 11
_E_COLUMNS = ", ".join(f"e.{c.strip()}" for c in COLUMNS.split(","))


class PostgresBoundaries(TaggedLog):
    """The :class:`~facta.store.boundaries.BoundaryStore` of a PostgreSQL engine."""

    def __init__(self, events: PostgresEventStore) -> None:
        super().__init__(events)
        self._events = events
        self._tables = f"{events.schema}.{events.prefix}"
        self._statements: dict[tuple[tuple[bool, bool, bool], ...], str] = {}

    async def read(
        self, query: Query, *, after: Position | None = None, limit: int | None = None
    ) -> TaggedEvents:
        store = self._events
        found, held = await self._page(query, after, limit)
        if held and store.visibility_wait > 0:
            # Matching events are committed but held back behind a transaction still
            # running: wait a little for it to end and read on (fresher, as read_all is).
            # Events that do not match never make a read wait.
            deadline = time.monotonic() + store.visibility_wait
            delay = 0.001
            while held and time.monotonic() + delay <= deadline:
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.02)
                last = found[-1].position if found else after
                more, held = await self._page(
                    query, last, None if limit is None else limit - len(found)
                )
                found += more
        return TaggedEvents(found, found[-1].position if found else after)

    async def _page(
        self, query: Query, after: Position | None, limit: int | None
    ) -> tuple[list[RecordedEvent], bool]:
        """The visible matching events after ``after``, and whether matching events are
        held back behind them (each row says whether it is visible: they sort after
        every visible row, so the visible ones are a prefix)."""
        sql, arguments = self.statement(query, after, limit)
        rows = await self._events.fetch(sql, *arguments)
        if not rows or rows[-1][_VISIBLE_COLUMN]:
            return _recorded(rows), False
        visible = len(rows) - 1
        while visible > 0 and not rows[visible - 1][_VISIBLE_COLUMN]:
            visible -= 1
        return _recorded(rows[:visible]), True

    def statement(
        self, query: Query, after: Position | None, limit: int | None
    ) -> tuple[str, list[Any]]:
        """The statement that reads ``query``'s events after ``after`` (at most ``limit``),
        and its arguments: one statement for each shape of query, made once."""
        start = after or Position(0, 0)
        arguments: list[Any] = [start.commit, start.sequence, limit]
        shape = []
        for item in query.items:
            shape.append((bool(item.tags), len(item.tags) > 1, bool(item.types)))
            if item.tags:
                arguments.append(item.tags[0])
            if len(item.tags) > 1:
                arguments.append(list(item.tags))
            if item.types:
                arguments.append(list(item.types))
        key = tuple(shape)
        sql = self._statements.get(key)
        if sql is None:
            sql = self._statements[key] = self._statement(query.items)
        return sql, arguments

    def _statement(self, items: Sequence[QueryItem]) -> str:
        """The statement for queries of this shape: one index-ordered select per item (by
        the tag index for an item with tags, by the log's order otherwise), merged.

        An item with tags reads the tag index, then each event by the log's primary key,
        in a LATERAL subquery that the planner cannot flatten (OFFSET 0), so a nested loop
        of key lookups in every plan. As a plain join, a connection's cached generic plan,
        made while the log was young and never analyzed, could be a hash join over a
        sequential scan of the whole log: each read of a tag then cost a pass over the log
        until autovacuum analyzed it."""
        t = self._tables
        n = 3
        selects = []
        for item in items:
            where = []
            if item.tags:
                n += 1
                source = (
                    f"{t}event_tags g CROSS JOIN LATERAL (SELECT * FROM {t}events x"
                    " WHERE x.commit_xid = g.commit_xid AND x.sequence = g.sequence"
                    " OFFSET 0) e"
                )
                order = "g.commit_xid, g.sequence"
                where += [f"g.tag = ${n}", "(g.commit_xid, g.sequence) > ($1, $2)"]
            else:
                source = f"{t}events e"
                order = "e.commit_xid, e.sequence"
                where.append("(e.commit_xid, e.sequence) > ($1, $2)")
            if len(item.tags) > 1:
                n += 1
                where.append(f"e.tags @> ${n}::text[]")
            if item.types:
                n += 1
                where.append(f"e.type = ANY(${n}::text[])")
            selects.append(
                f"SELECT {_E_COLUMNS}, {_VISIBLE} FROM {source} WHERE {' AND '.join(where)}"
                f" ORDER BY {order} LIMIT $3"
            )
        if len(selects) == 1:
            return selects[0]
        union = " UNION ALL ".join(f"({select})" for select in selects)
        return (
            f"SELECT DISTINCT ON (commit_xid, sequence) * FROM ({union}) u"
            " ORDER BY commit_xid, sequence LIMIT $3"
        )

    async def _head(self) -> Position:
        return await self._events.visible_head()  # a subscription never waits for it


def _recorded(rows: Sequence[Any]) -> list[RecordedEvent]:
    """Rows of :data:`COLUMNS` and the visibility flag as RecordedEvents."""
    position = Position
    return [
        RecordedEvent(i, s, v, position(c, q), t, sv, d, m, at, () if g is None else tuple(g))
        for i, s, v, c, q, t, sv, d, m, at, g, _ in rows
    ]
