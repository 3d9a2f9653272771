"""Sustained load: a fixed rate of mixed requests against `facta serve` for a long time.

    python -m tests.reliability.soak [--minutes 10] [--rate 200] [--store URL]

Reports p50/p99 latency and the server's resident memory in the first and the last minute,
and fails (exit 1) when either grew past its bound: latency and memory must stay flat.
Run by `make soak`; not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tests.http.conftest import start_server

ACCOUNTS = [f"soak-{i}" for i in range(50)]
WORKERS = 32  # connections; each sends its share of the rate on its own schedule


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def soak(url: str, pid: int, minutes: float, rate: float) -> int:
    windows: dict[int, list[float]] = {}
    memory: dict[int, list[float]] = {}
    errors: dict[int, int] = {}

    async def one(http: httpx.AsyncClient, rng: random.Random, due: float) -> None:
        choice = rng.random()
        account = rng.choice(ACCOUNTS)
        if choice < 0.45:
            response = await http.post(
                f"/accounts/{account}",
                json={"type": "Deposit", "amount": 2},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
        elif choice < 0.7:
            response = await http.post(
                f"/accounts/{account}", json={"type": "Withdraw", "amount": 1}
            )
        elif choice < 0.9:
            response = await http.get(f"/accounts/{account}")
        else:
            response = await http.get("/accounts?limit=20")
        # Latency from when the request was due, so a generator falling behind shows as
        # latency instead of silently sending less (no coordinated omission).
        minute = int((due - started) // 60)
        windows.setdefault(minute, []).append(time.monotonic() - due)
        if response.status_code >= 500:
            errors[minute] = errors.get(minute, 0) + 1

    async def worker(http: httpx.AsyncClient, index: int) -> None:
        rng = random.Random(index)
        interval = WORKERS / rate  # each worker sends its share of the fixed rate
        due = started + index * interval / WORKERS
        while due < end:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await one(http, rng, due)
            due += interval

    async def sample_memory() -> None:
        while time.monotonic() < end:
            minute = int((time.monotonic() - started) // 60)
            memory.setdefault(minute, []).append(rss_mb(pid))
            await asyncio.sleep(5)

    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as http:
        for account in ACCOUNTS:
            body = {"type": "OpenAccount", "owner": "Soak", "initial_balance": 100}
            await http.post(f"/accounts/{account}", json=body)
        started = time.monotonic()
        end = started + minutes * 60
        await asyncio.gather(sample_memory(), *(worker(http, i) for i in range(WORKERS)))

    first, last = min(windows), max(windows)
    if last == first:
        last = first
    rows = []
    for label, minute in (("first minute", first), ("last minute", last)):
        latencies = windows[minute]
        rows.append(
            (
                label,
                len(latencies),
                percentile(latencies, 0.5),
                percentile(latencies, 0.99),
                statistics.mean(memory.get(minute, [0.0])),
                errors.get(minute, 0),
            )
        )
    print("window         requests  p50 ms  p99 ms  server RSS MB  5xx")
    for label, count, p50, p99, rss, fives in rows:
        print(f"{label:14} {count:8} {p50:7.1f} {p99:7.1f} {rss:14.1f} {fives:4}")
    total_5xx = sum(errors.values())
    print(f"total requests {sum(len(v) for v in windows.values())}, 5xx {total_5xx}")
    (_, _, _, p99_start, rss_start, _), (_, _, _, p99_end, rss_end, _) = rows
    flat = p99_end <= max(2 * p99_start, p99_start + 20) and rss_end <= rss_start * 1.5 + 20
    return 0 if flat and total_5xx == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--store", default=None, help="store URL (default: a scratch SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facta-soak-") as scratch:
        workdir = Path(scratch)
        server = start_server(args.store or f"sqlite:///{workdir / 'soak.db'}", workdir)
        try:
            code = asyncio.run(soak(server.url, server.process.pid, args.minutes, args.rate))
        finally:
            server.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
