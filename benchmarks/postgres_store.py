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

import asyncpg

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("src", "examples")]

from bank.domain import Account, AccountOpened, Deposit, MoneyDeposited, OpenAccount  # noqa: E402
from facta import Application, Codec, EventStore, NewEvent, open_store  # noqa: E402

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
    """Reading the whole log in pages of ``page`` and decoding every event: events/s."""
    store = await open_store(url)
    await fill_log(store, events)
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


async def _in_fresh_schema(url: str, work: Callable[[str], Awaitable[float]]) -> float:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in url else "?"
    try:
        return await work(f"{url}{separator}schema={schema}")
    finally:
        connection = await asyncpg.connect(url)
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=URL)
    parser.add_argument("--only", default="sequential,concurrent,load,read-log")
    parser.add_argument("--log-events", type=int, default=1_000_000)
    args = parser.parse_args()
    workloads: dict[str, tuple[Callable[[str], Awaitable[float]], str]] = {
        "sequential": (sequential_commands, "commands/s (1 client)"),
        "concurrent": (concurrent_commands, "commands/s (64 clients)"),
        "load": (load_stream, "ms to load 10,000 events"),
        "read-log": (lambda url: read_log(url, args.log_events), "events/s read and decoded"),
    }
    for name in args.only.split(","):
        work, unit = workloads[name]
        value = await _in_fresh_schema(args.url, work)
        print(f"{name:<12} {value:>12,.1f}  {unit}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
