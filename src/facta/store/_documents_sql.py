"""The SQL of documents tables, shared by the SQLite and PostgreSQL backends.

Internal. Table and column names come from validated identifiers (the projection name, the
document's field names, quoted); values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facta.store.documents import Condition, DocumentSpec


def column(field: str) -> str:
    """The column of an indexed field (``key`` is the document's key)."""
    return "doc_key" if field == "key" else f'"f_{field}"'


def create_table(
    table: str, spec: DocumentSpec[Any], types: dict[str, str], blob: str, index: str
) -> list[str]:
    """Statements that create a slot's documents table and its indexes (named ``index``
    and a number: unqualified, as PostgreSQL wants index names)."""
    columns = ["doc_key TEXT PRIMARY KEY", f"doc {blob} NOT NULL"]
    columns += [f"{column(f)} {types[spec.kinds[f]]} NOT NULL" for f in spec.indexes]
    statements = [f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)})"]
    for i, f in enumerate(spec.indexes):
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {index}_i{i} ON {table} ({column(f)}, doc_key)"
        )
    return statements


def upsert(table: str, spec: DocumentSpec[Any], mark: Callable[[int], str]) -> str:
    """The statement that stores one ``spec.row(...)``."""
    names = ["doc_key", "doc", *[column(f) for f in spec.indexes]]
    values = ", ".join(mark(i + 1) for i in range(len(names)))
    updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values})"
        f" ON CONFLICT (doc_key) DO UPDATE SET {updates}"
    )


def where(
    conditions: list[Condition],
    mark: Callable[[int], str],
    parameters: list[Any],
    adapt: Callable[[str, Any], Any],
) -> list[str]:
    """SQL conditions for ``conditions``, their values appended to ``parameters``."""
    parts = []
    for c in conditions:
        if c.op == "in":
            if not c.value:
                parts.append("1 = 0")
                continue
            marks = []
            for value in c.value:
                parameters.append(adapt(c.field, value))
                marks.append(mark(len(parameters)))
            parts.append(f"{column(c.field)} IN ({', '.join(marks)})")
        else:
            parameters.append(adapt(c.field, c.value))
            parts.append(
                f"{column(c.field)} {'<>' if c.op == '!=' else c.op} {mark(len(parameters))}"
            )
    return parts


def select_page(
    table: str,
    conditions: list[Condition],
    order_by: str,
    descending: bool,
    after: tuple[Any, str] | None,
    limit: int,
    mark: Callable[[int], str],
    adapt: Callable[[str, Any], Any],
) -> tuple[str, list[Any]]:
    """A keyset-paginated query: rows ``(doc, order value, key)`` after the cursor."""
    parameters: list[Any] = []
    parts = where(conditions, mark, parameters, adapt)
    order = column(order_by)
    direction = "DESC" if descending else "ASC"
    if after is not None:
        comparison = "<" if descending else ">"
        if order_by == "key":
            parameters.append(after[1])
            parts.append(f"doc_key {comparison} {mark(len(parameters))}")
        else:
            parameters.append(adapt(order_by, after[0]))
            parameters.append(after[1])
            first, second = mark(len(parameters) - 1), mark(len(parameters))
            parts.append(f"({order}, doc_key) {comparison} ({first}, {second})")
    parameters.append(limit)
    sql = (
        f"SELECT doc, {order}, doc_key FROM {table}"
        + (f" WHERE {' AND '.join(parts)}" if parts else "")
        + f" ORDER BY {order} {direction}, doc_key {direction} LIMIT {mark(len(parameters))}"
    )
    return sql, parameters


def select_aggregate(
    table: str,
    expression: str,
    conditions: list[Condition],
    mark: Callable[[int], str],
    adapt: Callable[[str, Any], Any],
) -> tuple[str, list[Any]]:
    """``SELECT expression`` over the rows that match ``conditions``."""
    parameters: list[Any] = []
    parts = where(conditions, mark, parameters, adapt)
    sql = f"SELECT {expression} FROM {table}" + (f" WHERE {' AND '.join(parts)}" if parts else "")
    return sql, parameters
