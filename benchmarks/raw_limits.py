"""The physical limits of each store on this machine, with the same drivers facta uses:
single-row transactions per second, and fetching plus decoding a log of events."""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any

import msgspec

from benchmarks.workloads import BULK, Measurement, Scale, Target
from facta._ids import new_uuid
from facta.examples.bank.domain import MoneyDeposited
from facta.store.sqlite.schema import migrate

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


def _sqlite_own_schema(target: Target) -> sqlite3.Connection:
    """A connection to a new file holding facta's own schema (made by facta's migrations:
    the events table's keys and indexes, five b-trees), as facta's writer sets it up."""
    connection = sqlite3.connect(_sqlite_path(target), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    migrate(connection, "")
    return connection


_OWN_INSERT = (
    "INSERT INTO events (event_id, stream_id, category, version, type, schema_version, data,"
    " metadata, recorded_at) VALUES (?, ?, 'account', ?, 'MoneyDeposited', 1, ?, ?, ?)"
)


def _deposit_row(stream_id: str, version: int) -> tuple[Any, ...]:
    """A deposit's row as facta stores one (its columns, its metadata's size, its ids: time
    ordered, so that each goes at the end of the event-id index, not at a random page)."""
    event_id = new_uuid()
    metadata = b'{"correlation_id":"%s","causation_id":"%s"}' % ((event_id.encode(),) * 2)
    return (event_id, stream_id, version, _ROW, metadata, time.time())


def sqlite_own_schema_transactions(target: Target, scale: Scale) -> Measurement:
    """Single-row transactions into facta's own events table, each a deposit round robin
    over the accounts' streams: the limit of the schema itself, with no version check, no
    read, and no Python but the driver's calls (the rows are made before the timing)."""
    connection = _sqlite_own_schema(target)
    versions = [0] * scale.accounts
    rows = []
    for i in range(scale.commands // 2):
        account = i % scale.accounts
        versions[account] += 1
        rows.append(_deposit_row(f"account-a{account}", versions[account]))
    execute = connection.execute
    started = time.perf_counter()
    for row in rows:
        execute("BEGIN IMMEDIATE")
        execute(_OWN_INSERT, row)
        execute("COMMIT")
    seconds = time.perf_counter() - started
    return Measurement(len(rows) / seconds, "transactions/s", seconds)


def sqlite_own_schema_bulk(target: Target, scale: Scale) -> Measurement:
    """Transactions of BULK rows each into facta's own events table, on the bulk workload's
    streams (the rows made before the timing): events/s."""
    connection = _sqlite_own_schema(target)
    accounts = max(scale.accounts // 10, 1)
    versions = [0] * accounts
    batches = []
    for i in range(scale.commands * 2 // BULK):
        account = i % accounts
        stream_id = f"account-a{account}"
        batches.append([_deposit_row(stream_id, versions[account] + n) for n in range(1, BULK + 1)])
        versions[account] += BULK
    execute = connection.execute
    started = time.perf_counter()
    for rows in batches:
        execute("BEGIN IMMEDIATE")
        connection.executemany(_OWN_INSERT, rows)
        execute("COMMIT")
    seconds = time.perf_counter() - started
    return Measurement(len(batches) * BULK / seconds, "events/s", seconds)


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


RAW_SCHEMA = {
    ("sqlite", "1-sequential"): sqlite_own_schema_transactions,
    ("sqlite", "7-bulk-append"): sqlite_own_schema_bulk,
}
"""The same limits on facta's own schema (its keys and indexes), where measured."""

RAW = {
    ("sqlite", "1-sequential"): sqlite_single_transactions,
    ("sqlite", "5-read-log"): sqlite_fetch_decode,
    ("postgres", "1-sequential"): postgres_single_transactions,
    ("postgres", "5-read-log"): postgres_fetch_decode,
}
