"""The eventsourcing library's side of the growth benchmark's logs: its rows bulk-filled into
its own tables, exactly as its mapper writes them, and what its table and indexes take
(split from ``benchmarks/growth_fill.py``, which fills facta's logs and keeps both)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from benchmarks.growth_fill import (
    BLOCK,
    CHUNK_BLOCKS,
    PER_ACCOUNT,
    POSTGRES,
    Layout,
    _postgres_marker,
    _remove,
    _sqlite,
    _sqlite_marker,
    _usable,
    _write_marker,
    check_room,
    es_env,
    es_id,
    schema_name,
    sqlite_path,
)


def es_rows_sample() -> tuple[str, bytes, str, bytes]:
    """The topic and state eventsourcing's mapper makes of an opening and of a deposit."""
    from benchmarks.es_bank import Bank, BankAccount

    app = Bank(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    aggregate = BankAccount("Owner", Decimal("0.0"))
    aggregate.deposit(Decimal("1.00"))
    opened, deposited = (app.mapper.to_stored_event(e) for e in aggregate.collect_events())
    return opened.topic, opened.state, deposited.topic, deposited.state


def _es_app(store: str, out: Path, size: int, snapshots: bool = False) -> Any:
    from benchmarks.es_bank import Bank, SnapshottingBank

    return (SnapshottingBank if snapshots else Bank)(env=es_env(store, out, size))


async def es_fill(store: str, out: Path, size: int) -> dict[str, Any]:
    """The eventsourcing log of ``size`` events on ``store`` (as :func:`facta_fill`)."""
    layout = Layout.of(size)
    if store == "sqlite":
        path = sqlite_path(out, "eventsourcing", size)
        marker = _sqlite_marker(path)
        if _usable(marker, size):
            return {**marker, "reused": True}  # type: ignore[dict-item]
        _remove(path)
        await check_room(store, out, size)
        _es_app(store, out, size, snapshots=True)  # its tables
        started = time.perf_counter()
        last = await asyncio.to_thread(_es_sqlite_rows, path, layout)
    else:
        schema = schema_name("eventsourcing", size)
        connection = await asyncpg.connect(POSTGRES)
        try:
            marker = await _postgres_marker(connection, schema)
            if _usable(marker, size):
                return {**marker, "reused": True}  # type: ignore[dict-item]
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await check_room(store, out, size)
            await connection.execute(f"CREATE SCHEMA {schema}")
            await asyncio.to_thread(_es_app, store, out, size, True)
            started = time.perf_counter()
            last = await _es_postgres_rows(connection, schema, layout)
        finally:
            await connection.close()
    await asyncio.to_thread(_es_snapshot, store, out, size, layout)
    seconds = time.perf_counter() - started
    measured = await es_log_size(store, out, size)
    assert measured.events == size, (measured.events, size)
    return await _write_marker(store, out, "eventsourcing", size, last, seconds, measured)


def _es_sqlite_rows(path: Path, layout: Layout) -> int:
    opened_topic, opened, deposited_topic, deposited = es_rows_sample()

    def row(n: int | str, version: int) -> tuple[Any, ...]:
        if version == 1:
            return es_id(n), 1, opened_topic, opened
        return es_id(n), version, deposited_topic, deposited

    with _sqlite(path) as c:
        c.execute("PRAGMA journal_mode = OFF")
        c.execute("PRAGMA synchronous = OFF")
        c.execute("PRAGMA cache_size = -1000000")
        insert = "INSERT INTO stored_events VALUES (?,?,?,?)"
        c.execute("BEGIN")
        c.executemany(insert, (row("long", v) for v in range(1, layout.long + 1)))
        c.execute("COMMIT")
        for block in range(0, layout.blocks, CHUNK_BLOCKS):
            c.execute("BEGIN")
            rows = (row(n, v) for n, v in layout.order(block, block + CHUNK_BLOCKS))
            c.executemany(insert, rows)
            c.execute("COMMIT")
        c.execute("PRAGMA journal_mode = WAL")  # as eventsourcing sets it
        last: int = c.execute("SELECT max(rowid) FROM stored_events").fetchone()[0]
    return last


async def _es_postgres_rows(connection: asyncpg.Connection, schema: str, layout: Layout) -> int:
    opened_topic, opened, deposited_topic, deposited = es_rows_sample()

    def insert(rows: str) -> str:
        return (
            f"INSERT INTO {schema}.bank_events (originator_id, originator_version, topic, state)"
            " SELECT md5(key)::uuid, v, CASE WHEN v = 1 THEN $1 ELSE $3 END,"
            f" CASE WHEN v = 1 THEN $2::bytea ELSE $4::bytea END FROM ({rows}) r ORDER BY n"
        )

    long_rows = "SELECT 'acclong' AS key, v, v AS n FROM generate_series(1, $5::int) v"
    account_rows = (
        "SELECT 'acc' || s AS key, v,"
        f" (s / {BLOCK}) * {BLOCK * PER_ACCOUNT}"
        f" + (v - 1) * least({BLOCK}, {layout.accounts} - (s / {BLOCK}) * {BLOCK})"
        f" + s % {BLOCK} AS n"
        " FROM generate_series($5::int, $6::int) s, generate_series(1, 10) v"
    )
    args = (opened_topic, opened, deposited_topic, deposited)
    await connection.execute(insert(long_rows), *args, layout.long)
    for block in range(0, layout.blocks, CHUNK_BLOCKS):
        first = block * BLOCK
        last_account = min((block + CHUNK_BLOCKS) * BLOCK, layout.accounts) - 1
        await connection.execute(insert(account_rows), *args, first, last_account)
    await connection.execute(f"VACUUM (ANALYZE) {schema}.bank_events")
    last: int = await connection.fetchval(f"SELECT max(notification_id) FROM {schema}.bank_events")
    return last


def _es_snapshot(store: str, out: Path, size: int, layout: Layout) -> None:
    import uuid

    app = _es_app(store, out, size, snapshots=True)
    app.take_snapshot(uuid.UUID(es_id("long")), version=layout.long)
    app.close()


class _Size(msgspec.Struct):
    events: int
    table_bytes: int
    index_bytes: int


async def es_log_size(store: str, out: Path, size: int) -> _Size:
    """What eventsourcing's events table and its indexes take (as facta's log_size does)."""
    if store == "sqlite":

        def measure() -> _Size:
            with _sqlite(sqlite_path(out, "eventsourcing", size)) as c:
                sizes = dict(
                    c.execute(
                        "SELECT s.type, sum(d.pgsize) FROM sqlite_schema s"
                        " JOIN dbstat d ON d.name = s.name"
                        " WHERE s.tbl_name = 'stored_events' GROUP BY s.type"
                    ).fetchall()
                )
                [(events,)] = c.execute("SELECT count(*) FROM stored_events").fetchall()
            return _Size(events, sizes.get("table", 0), sizes.get("index", 0))

        return await asyncio.to_thread(measure)
    table = f"{schema_name('eventsourcing', size)}.bank_events"
    connection = await asyncpg.connect(POSTGRES)
    try:
        row = await connection.fetchrow(
            f"SELECT (SELECT count(*) FROM {table}), pg_table_size($1::regclass),"
            " pg_indexes_size($1::regclass)",
            table,
        )
    finally:
        await connection.close()
    assert row is not None
    return _Size(row[0], row[1], row[2])
