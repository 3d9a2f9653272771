"""The PostgreSQL store's own figures, each workload a small async function of a store URL.

    python benchmarks/postgres_store.py [--url postgresql://postgres@127.0.0.1:5432/test]
                                        [--only sequential,concurrent,load,read-log]
                                        [--log-events 1000000]

Every workload runs in a fresh schema (``bench_<random>``), dropped afterwards, and prints
one row: workload, value, unit. The workloads are the issue's: deposit commands through
``facta.Application`` (bank example) with 1 client and with 64 concurrent clients on distinct
accounts, loading a 10,000-event stream without snapshots, and reading the whole log
decoded. benchmarks/run.py runs the same shapes side by side with ``eventsourcing``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import asyncpg
import msgspec

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("src", "examples")]

from facta import Application, Codec, EventStore, NewEvent, Position, open_store  # noqa: E402
from facta.examples.bank.domain import Account, AccountOpened, Deposit, MoneyDeposited, OpenAccount  # noqa: E402

URL = "postgresql://postgres@127.0.0.1:5432/test"
ONE = Decimal("1.00")
ZERO = Decimal("0.0")
account = Account()


class UnsnapshottedAccount(Account):
    """The bank account without snapshots, so that a load replays the whole stream."""

    snapshot_every = None


async def _open_accounts(app: Application, count: int, clients: int = 16) -> None:
    async def opener(c: int) -> None:
        for i in range(c, count, clients):
            await app.execute(account, f"a{i}", OpenAccount("Owner", ZERO))

    await asyncio.gather(*(opener(c) for c in range(clients)))


async def sequential_commands(url: str, commands: int = 10_000, accounts: int = 1_000) -> float:
    """Deposits, one client, one command at a time: commands/s."""
    store = await open_store(url)
    app = Application(store)
    await _open_accounts(app, accounts)
    deposit = Deposit(ONE)
    started = time.perf_counter()
    for i in range(commands):
        await app.execute(account, f"a{i % accounts}", deposit)
    seconds = time.perf_counter() - started
    await store.close()
    return commands / seconds


async def concurrent_commands(
    url: str, clients: int = 64, commands: int = 40_000, accounts: int = 1_024
) -> float:
    """Deposits from ``clients`` concurrent clients, each on its own accounts: commands/s."""
    store = await open_store(url)
    app = Application(store)
    await _open_accounts(app, accounts)
    deposit = Deposit(ONE)
    per_client = commands // clients

    async def client(c: int) -> None:
        mine = range(c, accounts, clients)
        for i in range(per_client):
            await app.execute(account, f"a{mine[i % len(mine)]}", deposit)

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    seconds = time.perf_counter() - started
    await store.close()
    return per_client * clients / seconds


def _events(codec: Codec, count: int) -> list[NewEvent]:
    opened = codec.encode(AccountOpened("Owner", ZERO))
    deposited = codec.encode(MoneyDeposited(ONE)).data
    return [opened] + [NewEvent("MoneyDeposited", deposited) for _ in range(count - 1)]


async def load_stream(url: str, length: int = 10_000) -> float:
    """Loading (reading, decoding, folding) one account of ``length`` events: median ms."""
    store = await open_store(url)
    codec = Codec()
    codec.register_aggregate(account)
    events = _events(codec, length)
    for start in range(0, length, 1000):
        await store.append("account-long", events[start : start + 1000], start)
    times = []
    aggregate = UnsnapshottedAccount()
    for _ in range(7):
        app = Application(store, cache_size=0)
        started = time.perf_counter()
        loaded = await app.load(aggregate, "long")
        times.append(time.perf_counter() - started)
        assert loaded.version == length
    await store.close()
    return statistics.median(times) * 1000


async def fill_log(store: EventStore, total: int, per_append: int = 1_000) -> None:
    """``total`` bank events in streams of ``per_append``, appended by 8 concurrent writers."""
    codec = Codec()
    codec.register_aggregate(account)
    streams = total // per_append

    async def writer(w: int) -> None:
        for s in range(w, streams, 8):
            await store.append(f"account-{s}", _events(codec, per_append), 0)

    await asyncio.gather(*(writer(w) for w in range(8)))


async def read_log(url: str, events: int = 1_000_000, page: int = 10_000) -> float:
    """Reading the whole log in pages of ``page`` and decoding every event: events/s.

    Fills the log first unless it holds ``events`` already (so that raw_read_log can read the
    same log afterwards).
    """
    store = await open_store(url)
    if not await store.read_all(after=Position(0, 0), limit=1):
        await fill_log(store, events)
        await store.read_all(limit=events)  # untimed: sets the hint bits of the new rows
    codec = Codec()
    codec.register_aggregate(account)
    decode = codec.decode
    started = time.perf_counter()
    count = 0
    batch = await store.read_all(limit=page)
    while batch:
        for record in batch:
            decode(record)
        count += len(batch)
        batch = await store.read_all(after=batch[-1].position, limit=page)
    seconds = time.perf_counter() - started
    await store.close()
    assert count == events, count
    return count / seconds


# -- the same work on bare asyncpg, the ceiling of what a store can do here ------------------


async def raw_transactions(url: str, count: int = 5_000) -> float:
    """Single-row INSERT transactions, one at a time, with plain asyncpg: transactions/s."""
    dsn, schema = _split(url)
    connection = await asyncpg.connect(dsn)
    await connection.execute(
        f"CREATE TABLE {schema}.raw_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " stream_id text NOT NULL, version bigint NOT NULL, data bytea NOT NULL,"
        " UNIQUE (stream_id, version))"
    )
    insert = f"INSERT INTO {schema}.raw_events (stream_id, version, data) VALUES ($1, $2, $3)"
    data = b'{"amount":1.00}'
    started = time.perf_counter()
    for i in range(count):
        await connection.execute(insert, f"account-{i % 1000}", i // 1000 + 1, data)
    seconds = time.perf_counter() - started
    await connection.close()
    return count / seconds


async def raw_read_log(url: str, page: int = 10_000) -> float:
    """The log read_log filled, fetched with plain asyncpg and decoded with msgspec into the
    event classes (no store, no RecordedEvent): events/s."""
    dsn, schema = _split(url)
    connection = await asyncpg.connect(dsn)
    decoders = {
        "AccountOpened": msgspec.json.Decoder(AccountOpened).decode,
        "MoneyDeposited": msgspec.json.Decoder(MoneyDeposited).decode,
    }
    sql = (
        f"SELECT commit_xid, sequence, type, data FROM {schema}.events"
        " WHERE (commit_xid, sequence) > ($1, $2) ORDER BY commit_xid, sequence LIMIT $3"
    )
    started = time.perf_counter()
    count = 0
    rows = await connection.fetch(sql, 0, 0, page)
    while rows:
        for _, _, kind, data in rows:
            decoders[kind](data)
        count += len(rows)
        rows = await connection.fetch(sql, rows[-1][0], rows[-1][1], page)
    seconds = time.perf_counter() - started
    await connection.close()
    return count / seconds


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    schema = dict(parse_qsl(parts.query))["schema"]
    return urlunsplit(parts._replace(query="")), schema


async def _in_fresh_schema(url: str, *work: Callable[[str], Awaitable[float]]) -> list[float]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in url else "?"
    try:
        # open_store creates the schema; the raw workloads use it as it is.
        await (await open_store(f"{url}{separator}schema={schema}")).close()
        return [await step(f"{url}{separator}schema={schema}") for step in work]
    finally:
        connection = await asyncpg.connect(url)
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=URL)
    parser.add_argument("--only", default="raw,sequential,concurrent,load,read-log")
    parser.add_argument("--log-events", type=int, default=1_000_000)
    args = parser.parse_args()
    workloads: dict[str, list[tuple[str, Callable[[str], Awaitable[float]], str]]] = {
        "raw": [("raw-tx", raw_transactions, "asyncpg single-row transactions/s")],
        "sequential": [("sequential", sequential_commands, "commands/s (1 client)")],
        "concurrent": [("concurrent", concurrent_commands, "commands/s (64 clients)")],
        "load": [("load", load_stream, "ms to load 10,000 events")],
        "read-log": [
            ("read-log", lambda url: read_log(url, args.log_events), "events/s read, decoded"),
            ("raw-read-log", raw_read_log, "events/s, asyncpg fetch + msgspec decode"),
        ],
    }
    for name in args.only.split(","):
        steps = workloads[name]
        values = await _in_fresh_schema(args.url, *(work for _, work, _ in steps))
        for (label, _, unit), value in zip(steps, values, strict=True):
            print(f"{label:<14} {value:>12,.1f}  {unit}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
