"""The physical limits of each store on this machine, with the same drivers facta uses:
single-row transactions per second, and fetching plus decoding a log of events."""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any

import msgspec

from benchmarks.workloads import Measurement, Scale, Target
from facta.examples.bank.domain import MoneyDeposited

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


_ENVELOPE = (
    "position INTEGER PRIMARY KEY, event_id TEXT, stream_id TEXT, version INTEGER, type TEXT,"
    " schema_version INTEGER, data BLOB, metadata BLOB, recorded_at REAL"
)
_SELECT = "SELECT event_id, stream_id, version, position, type, schema_version, data, metadata,"


def _envelopes(count: int) -> Any:
    """Rows shaped like a stored event envelope (the same columns facta stores and reads)."""
    for n in range(count):
        yield (str(uuid.uuid4()), f"account-{n // 1000}", n % 1000 + 1, "MoneyDeposited", 1, _ROW)


def sqlite_fetch_decode(target: Target, scale: Scale) -> Measurement:
    """Fetch every column of an envelope table in pages of 10,000 and decode each event's
    data: what reading the whole log costs the driver and the decoder alone."""
    connection = sqlite3.connect(_sqlite_path(target), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"CREATE TABLE t ({_ENVELOPE})")
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO t (event_id, stream_id, version, type, schema_version, data, metadata,"
        " recorded_at) VALUES (?, ?, ?, ?, ?, ?, '{}', 0.0)",
        _envelopes(scale.log),
    )
    connection.execute("COMMIT")
    decode = msgspec.json.Decoder(MoneyDeposited).decode
    sql = f"{_SELECT} recorded_at FROM t WHERE position > ? ORDER BY position LIMIT 10000"
    started = time.perf_counter()
    last, count = 0, 0
    while True:
        rows = connection.execute(sql, (last,)).fetchall()
        for row in rows:
            decode(row[6])
        count += len(rows)
        if len(rows) < 10_000:
            break
        last = rows[-1][3]
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


_POSTGRES_COLUMNS = [
    "commit_xid",
    "sequence",
    "event_id",
    "stream_id",
    "version",
    "type",
    "schema_version",
    "data",
    "metadata",
    "recorded_at",
]


async def postgres_fetch_decode(target: Target, scale: Scale) -> Measurement:
    """The same with asyncpg, on a table with the column types and the key of facta's own
    (text event ids, the log ordered by writing transaction and sequence), filled one
    transaction id per thousand rows as the facta run's streams are."""
    import asyncpg

    schema = target.es_env["POSTGRES_SCHEMA"]
    connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await connection.execute(
        f"CREATE TABLE {schema}.t (commit_xid xid8, sequence bigint, event_id text,"
        " stream_id text, version bigint, type text, schema_version int, data bytea,"
        " metadata bytea, recorded_at double precision, PRIMARY KEY (commit_xid, sequence))"
    )
    await connection.copy_records_to_table(
        "t",
        schema_name=schema,
        columns=_POSTGRES_COLUMNS,
        records=(
            (1000 + n // 1000, n + 1, *row, b"{}", 0.0)
            for n, row in enumerate(_envelopes(scale.log))
        ),
    )
    decode = msgspec.json.Decoder(MoneyDeposited).decode
    sql = (
        "SELECT event_id, stream_id, version, commit_xid, sequence, type, schema_version, data,"
        f" metadata, recorded_at FROM {schema}.t WHERE (commit_xid, sequence) > ($1, $2)"
        " ORDER BY commit_xid, sequence LIMIT 10000"
    )
    started = time.perf_counter()
    commit, sequence, count = 0, 0, 0
    while True:
        rows = await connection.fetch(sql, commit, sequence)
        for row in rows:
            decode(row[7])
        count += len(rows)
        if len(rows) < 10_000:
            break
        commit, sequence = rows[-1][3], rows[-1][4]
    seconds = time.perf_counter() - started
    await connection.close()
    return Measurement(count / seconds, "events/s", seconds)


RAW = {
    ("sqlite", "1-sequential"): sqlite_single_transactions,
    ("sqlite", "5-read-log"): sqlite_fetch_decode,
    ("postgres", "1-sequential"): postgres_single_transactions,
    ("postgres", "5-read-log"): postgres_fetch_decode,
}
