"""The SQL of consistency boundaries on SQLite: writing an event's tags, and the statement
that finds the events a query matches after a position (for reads and append conditions).

Tags are stored in the event's row, sorted and joined by the unit separator (``\\x1f``, which
tags may not hold), and in ``{prefix}event_tags``, one row per tag and event. A query item
that names tags is driven by that index (its first tag, from ``after`` on), one that names
only types by the index of types, and one that names neither reads the log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from facta.store.boundaries import Query, QueryItem

SEPARATOR = "\x1f"


def joined(tags: Sequence[str]) -> str | None:
    """The stored form of an event's (checked, sorted) tags: NULL for none."""
    return SEPARATOR.join(tags) if tags else None


def split(stored: str | None) -> tuple[str, ...]:
    """An event's tags from their stored form."""
    return () if stored is None else tuple(stored.split(SEPARATOR))


class TagSQL:
    """Statements over ``{prefix}events`` and ``{prefix}event_tags``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.insert = f"INSERT INTO {prefix}event_tags (tag, position) VALUES (?, ?)"

    def write(self, connection: sqlite3.Connection, tags: Sequence[str], position: int) -> None:
        """Index an event's tags (inside the append's transaction)."""
        connection.executemany(self.insert, [(tag, position) for tag in tags])

    def matching(
        self, columns: str, query: Query, after: int, limit: int | None
    ) -> tuple[str, list[Any]]:
        """A statement and its parameters: ``columns`` of the events after ``after`` that
        match ``query``, in log order, at most ``limit``."""
        predicates: list[str] = []
        parameters: list[Any] = []
        for item in query.items:
            predicate, values = _item_predicate(item)
            predicates.append(predicate)
            parameters.extend(values)
        where = "position > ?"
        all_parameters: list[Any] = [after]
        drivers = [self._driver(item) for item in query.items]
        if all(driver is not None for driver in drivers):
            # Every item can be looked up in an index: only the positions they give are read.
            selects = []
            for driver in drivers:
                assert driver is not None
                selects.append(driver[0])
                all_parameters.extend([*driver[1], after])
            where += f" AND position IN ({' UNION '.join(selects)})"
        if "1" not in predicates:  # an item that matches everything makes the rest moot
            where += f" AND ({' OR '.join(predicates)})"
            all_parameters.extend(parameters)
        sql = f"SELECT {columns} FROM {self.prefix}events WHERE {where} ORDER BY position LIMIT ?"
        all_parameters.append(-1 if limit is None else limit)
        return sql, all_parameters

    def _driver(self, item: QueryItem) -> tuple[str, list[Any]] | None:
        """The positions one item can match, from an index: None when it names nothing."""
        if item.tags:
            return (
                f"SELECT position FROM {self.prefix}event_tags WHERE tag = ? AND position > ?",
                [item.tags[0]],
            )
        if item.types:
            marks = ", ".join("?" * len(item.types))
            return (
                f"SELECT position FROM {self.prefix}events WHERE type IN ({marks})"
                " AND position > ?",
                list(item.types),
            )
        return None


def _item_predicate(item: QueryItem) -> tuple[str, list[Any]]:
    """Whether a row matches ``item``: its type among the item's, each of its tags present
    (found between separators in the stored form)."""
    clauses: list[str] = []
    values: list[Any] = []
    if item.types:
        clauses.append(f"type IN ({', '.join('?' * len(item.types))})")
        values.extend(item.types)
    for tag in item.tags:
        clauses.append("instr(char(31) || tags || char(31), ?) > 0")
        values.append(f"{SEPARATOR}{tag}{SEPARATOR}")
    return (f"({' AND '.join(clauses)})" if clauses else "1"), values
