"""Projection catch-up benchmarks: the bank's ``accounts`` document read model built from a
log of N events (1,000 accounts of N/1,000 events each), timed from the first read to the
last commit, and the resident memory while catching up.

    python benchmarks/projections.py sqlite:////tmp/bench.db [events]
    python benchmarks/projections.py postgresql://postgres@127.0.0.1/test [events]

Each function takes a store URL (an empty store: it fills it untimed first) and prints one row.
``facta_projection`` is the same workload as the harness's ``6-projection`` runs it.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facta import Codec, EventStore, NewEvent, open_store
from facta.examples.bank.domain import Account, AccountOpened, MoneyDeposited
from facta.examples.bank.read_model import Accounts, AccountsProjection
from facta.projections import ProjectionRunner, ReadStore

PER_STREAM = 100


async def fill(store: EventStore, events: int, per_stream: int = PER_STREAM) -> None:
    """Append ``events`` bank events, ``per_stream`` per account, untimed."""
    codec = Codec()
    codec.register_aggregate(Account())
    opened = codec.encode(AccountOpened("Owner", Decimal("0.0"))).data
    deposited = codec.encode(MoneyDeposited(Decimal("1.00"))).data
    streams = events // per_stream
    pending = []
    for s in range(streams):
        batch = [NewEvent("AccountOpened", opened)]
        batch += [NewEvent("MoneyDeposited", deposited) for _ in range(per_stream - 1)]
        pending.append(store.append(f"account-{s}", batch, 0))
        if len(pending) == 50:  # concurrent appends share transactions (group commit)
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 2**20


async def catch_up(url: str, events: int = 100_000, *, batch_size: int = 1000) -> dict[str, Any]:
    """Catch the accounts projection up on ``events`` events; prints and returns the row."""
    store = await open_store(url)
    try:
        await fill(store, events)
        runner = ProjectionRunner(store, [AccountsProjection()], batch_size=batch_size)
        samples: list[float] = []

        async def sample() -> None:
            while True:
                samples.append(_rss_mb())
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        await runner.catch_up()
        seconds = time.perf_counter() - started
        sampler.cancel()
        await runner.close()
        read_store = ReadStore(store)
        totals = await Accounts(read_store).totals()
        await read_store.close()
        assert totals.balance == Decimal(events - events // PER_STREAM), totals
        quarter = max(1, len(samples) // 4)
        row = {
            "benchmark": "projection catch-up",
            "backend": url.partition(":")[0],
            "events": events,
            "seconds": round(seconds, 3),
            "events_per_s": round(events / seconds),
            "rss_mb_first_quarter": round(max(samples[:quarter]), 1),
            "rss_mb_last_quarter": round(max(samples[-quarter:]), 1),
        }
        print(row, flush=True)
        return row
    finally:
        await store.close()


async def facta_projection(target: Any, scale: Any) -> Any:
    """The harness's ``6-projection`` workload on facta."""
    from benchmarks.workloads import Measurement

    store = await open_store(target.facta_url)
    await fill(store, scale.projection)
    runner = ProjectionRunner(store, [AccountsProjection()])
    started = time.perf_counter()
    await runner.catch_up()
    seconds = time.perf_counter() - started
    await runner.close()
    await store.close()
    return Measurement(scale.projection / seconds, "events/s", seconds)


async def main(url: str, events: int) -> None:
    if url.startswith("postgres"):
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        url = f"{url}{'&' if '?' in url else '?'}schema={schema}"
        try:
            await catch_up(url, events)
        finally:
            import asyncpg

            connection = await asyncpg.connect(url.partition("?")[0])
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await connection.close()
    else:
        await catch_up(url, events)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000))
