"""The physical limits of each store on this machine, with the same drivers facta uses:
single-row transactions per second, and fetching plus decoding a log of events."""

from __future__ import annotations

import sqlite3
import time
import uuid

import msgspec

from bank.domain import MoneyDeposited
from benchmarks.workloads import Measurement, Scale, Target

_ROW = b'{"type":"MoneyDeposited","amount":1.00}'


def _sqlite_path(target: Target) -> str:
    return target.facta_url.removeprefix("sqlite:///")


def sqlite_single_transactions(target: Target, scale: Scale) -> Measurement:
    connection = sqlite3.connect(_sqlite_path(target), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, event_id TEXT, data BLOB)")
    count = scale.commands // 2
    started = time.perf_counter()
    for _ in range(count):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO t (event_id, data) VALUES (?, ?)", (str(uuid.uuid4()), _ROW)
        )
        connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    return Measurement(count / seconds, "transactions/s", seconds)


def sqlite_fetch_decode(target: Target, scale: Scale) -> Measurement:
    connection = sqlite3.connect(_sqlite_path(target), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, event_id TEXT, data BLOB)")
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO t (event_id, data) VALUES (?, ?)",
        ((str(uuid.uuid4()), _ROW) for _ in range(scale.log)),
    )
    connection.execute("COMMIT")
    decode = msgspec.json.Decoder(MoneyDeposited).decode
    started = time.perf_counter()
    last, count = 0, 0
    while True:
        rows = connection.execute(
            "SELECT id, event_id, data FROM t WHERE id > ? ORDER BY id LIMIT 10000", (last,)
        ).fetchall()
        for row in rows:
            decode(row[2])
        count += len(rows)
        if len(rows) < 10_000:
            break
        last = rows[-1][0]
    seconds = time.perf_counter() - started
    return Measurement(count / seconds, "events/s", seconds)


async def postgres_single_transactions(target: Target, scale: Scale) -> Measurement:
    import asyncpg

    schema = target.es_env["POSTGRES_SCHEMA"]
    connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await connection.execute(f"CREATE TABLE {schema}.t (id bigserial PRIMARY KEY, data bytea)")
    count = scale.commands // 4
    started = time.perf_counter()
    for _ in range(count):
        async with connection.transaction():
            await connection.execute(f"INSERT INTO {schema}.t (data) VALUES ($1)", _ROW)
    seconds = time.perf_counter() - started
    await connection.close()
    return Measurement(count / seconds, "transactions/s", seconds)


async def postgres_fetch_decode(target: Target, scale: Scale) -> Measurement:
    import asyncpg

    schema = target.es_env["POSTGRES_SCHEMA"]
    connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await connection.execute(
        f"CREATE TABLE {schema}.t (id bigserial PRIMARY KEY, event_id uuid, data bytea)"
    )
    await connection.copy_records_to_table(
        "t",
        schema_name=schema,
        columns=["event_id", "data"],
        records=((uuid.uuid4(), _ROW) for _ in range(scale.log)),
    )
    decode = msgspec.json.Decoder(MoneyDeposited).decode
    sql = f"SELECT id, event_id, data FROM {schema}.t WHERE id > $1 ORDER BY id LIMIT 10000"
    started = time.perf_counter()
    last, count = 0, 0
    while True:
        rows = await connection.fetch(sql, last)
        for row in rows:
            decode(row[2])
        count += len(rows)
        if len(rows) < 10_000:
            break
        last = rows[-1][0]
    seconds = time.perf_counter() - started
    await connection.close()
    return Measurement(count / seconds, "events/s", seconds)


RAW = {
    ("sqlite", "1-sequential"): sqlite_single_transactions,
    ("sqlite", "5-read-log"): sqlite_fetch_decode,
    ("postgres", "1-sequential"): postgres_single_transactions,
    ("postgres", "5-read-log"): postgres_fetch_decode,
}
