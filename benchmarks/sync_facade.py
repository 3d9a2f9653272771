"""The synchronous facade's price: facta.sync beside the async Application, in one run.

    python benchmarks/sync_facade.py [--stores memory,sqlite,postgres] [--rounds 5]
                                     [--quick] [--out benchmarks/results]

Per store (memory, a new SQLite file, a new PostgreSQL schema dropped afterwards), in
``--rounds`` alternating rounds (so that a change in the machine's load falls on both sides),
each on a fresh store, after an untimed warm-up:

- ``async-deposit``: sequential ``await app.execute(Account(), id, Deposit(...))`` on one
  account with the async Application (the bank example's domain), µs per command (the
  snapshots they start saved within the timing, as the sync side saves them);
- ``sync-deposit``: the same commands through ``facta.sync.Application`` from the calling
  thread, alone on the engine (the loop runs in the calling thread), µs per command. The
  two run side by side, each on a store of its own, in alternating batches of 1% of the
  commands (see ``side_by_side_deposits``);
- ``sync-deposit-busy``: the same while a background task sits on the engine's loop (as a
  projection runner does): every call is handed to the engine's thread and back;
- ``call``: ``engine.run(coroutine)`` of a coroutine that does nothing, alone: what running
  the loop for one call costs by itself;
- ``hand-over``: the same while the engine's thread runs the loop: one trip to that thread
  and back.

A row's value is the median of its rounds. Prints the raw rows and the ratio sync ÷ async
per-command cost (target from issue 26: at most 1.25), both as the ratio of the medians and
as the median of each round's ratio and writes them as JSON
(``sync-raw-<date>.json`` in ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import facta.sync
from facta import Application, open_store
from facta.examples.bank.domain import Account, Deposit, OpenAccount

# Run as a script, this folder comes first on sys.path: the repository root is needed too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import chosen, exit_if_failed, run_facts, save, store_options

HERE = Path(__file__).resolve().parent
PG_DSN = os.environ.get("FACTA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
STORES = ("memory", "sqlite", "postgres")
TARGET = 1.25  # sync ÷ async per-command cost, at most
ACCOUNT = Account()
AMOUNT = Decimal("1.25")
OPEN = OpenAccount("Bench", Decimal(0))


@dataclass(frozen=True)
class Settings:
    rounds: int = 5
    commands: tuple[tuple[str, int], ...] = (("memory", 10_000), ("sqlite", 300), ("postgres", 300))
    hand_overs: int = 3000
    warmup: int = 30

    @classmethod
    def named(cls, quick: bool, rounds: int) -> Settings:
        if quick:  # a smoke test of the script, not a measurement
            few = (("memory", 20), ("sqlite", 5), ("postgres", 5))
            return cls(rounds=1, commands=few, hand_overs=20, warmup=2)
        return cls(rounds=rounds)

    def count(self, store: str) -> int:
        return dict(self.commands)[store]


class Scratch:
    """Store URLs on fresh storage: a new SQLite file, a new PostgreSQL schema."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.schemas: list[str] = []

    def url(self, store: str) -> str:
        name = uuid.uuid4().hex[:12]
        if store == "memory":
            return "memory://"
        if store == "sqlite":
            return f"sqlite:///{self.directory / f'sync-{name}.db'}"
        self.schemas.append(f"bench_sync_{name}")
        return f"{PG_DSN}?schema={self.schemas[-1]}"

    def drop(self) -> None:
        if not self.schemas:
            return
        import asyncpg

        async def drop() -> None:
            connection = await asyncpg.connect(PG_DSN)
            try:
                for schema in self.schemas:
                    await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await connection.close()

        asyncio.run(drop())


def side_by_side_deposits(
    async_url: str, sync_url: str, n: int, warmup: int, batch: int
) -> tuple[float, float]:
    """Seconds per command of ``n`` sequential deposits with the async Application and with
    facta.sync's, each on a store of its own, in alternating batches of ``batch`` commands.

    This machine's speed swings by up to 1.8x in phases of about a second (a CPU loop timed
    back to back: 10-20 ms); batches far shorter than a phase, alternating (which side goes
    first alternating too), put both sides in every phase alike, where whole runs one after
    the other would each catch whichever phase came. The snapshots the async commands start
    are saved within their batch's timing, as the sync side saves them (on the memory store,
    where nothing suspends, they would otherwise wait until after it)."""
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(open_store(async_url))
    try:
        app = Application(store)
        with facta.sync.open_store(sync_url) as engine:
            sync_app = facta.sync.Application(engine)

            async def async_batch(count: int) -> float:
                started = time.perf_counter()
                for _ in range(count):
                    await app.execute(ACCOUNT, "bench", Deposit(AMOUNT))
                await app.drain()
                return time.perf_counter() - started

            def sync_batch(count: int) -> float:
                started = time.perf_counter()
                for _ in range(count):
                    sync_app.execute(ACCOUNT, "bench", Deposit(AMOUNT))
                return time.perf_counter() - started

            loop.run_until_complete(app.execute(ACCOUNT, "bench", OPEN))
            sync_app.execute(ACCOUNT, "bench", OPEN)
            loop.run_until_complete(async_batch(warmup))
            sync_batch(warmup)
            gc.collect()
            async_seconds = sync_seconds = 0.0
            for index, start in enumerate(range(0, n, batch)):
                count = min(batch, n - start)
                if index % 2 == 0:
                    async_seconds += loop.run_until_complete(async_batch(count))
                    sync_seconds += sync_batch(count)
                else:
                    sync_seconds += sync_batch(count)
                    async_seconds += loop.run_until_complete(async_batch(count))
        return async_seconds / n, sync_seconds / n
    finally:
        loop.run_until_complete(store.close())
        loop.close()


@contextlib.contextmanager
def kept_busy(engine: facta.sync.Engine, busy: bool) -> Iterator[None]:
    """With ``busy``, a task waits on the engine's loop throughout (as a runner's does), so
    that the engine's own thread runs the loop and every call is handed to it."""
    if not busy:
        yield
        return
    waiting: list[asyncio.Task[None]] = []

    async def start() -> None:
        waiting.append(asyncio.get_running_loop().create_task(asyncio.Event().wait()))

    async def stop() -> None:
        waiting[0].cancel()

    engine.run(start())
    try:
        yield
    finally:
        engine.run(stop())


def sync_deposits(url: str, n: int, warmup: int, busy: bool = False) -> float:
    """Seconds per command of ``n`` sequential deposits through facta.sync."""
    with facta.sync.open_store(url) as engine, kept_busy(engine, busy):
        app = facta.sync.Application(engine)
        app.execute(ACCOUNT, "bench", OpenAccount("Bench", Decimal(0)))
        for _ in range(warmup):
            app.execute(ACCOUNT, "bench", Deposit(AMOUNT))
        gc.collect()
        started = time.perf_counter()
        for _ in range(n):
            app.execute(ACCOUNT, "bench", Deposit(AMOUNT))
        return (time.perf_counter() - started) / n


def calls(url: str, n: int, warmup: int, busy: bool = False) -> float:
    """Seconds per ``engine.run`` of a coroutine that does nothing."""

    async def nothing() -> None:
        return None

    with facta.sync.open_store(url) as engine, kept_busy(engine, busy):
        for _ in range(warmup):
            engine.run(nothing())
        gc.collect()
        started = time.perf_counter()
        for _ in range(n):
            engine.run(nothing())
        return (time.perf_counter() - started) / n


def measure(store: str, s: Settings, scratch: Scratch) -> dict[str, list[float]]:
    """Each workload's µs per operation, one value per round (the sides alternate)."""
    n = s.count(store)
    sides: list[tuple[str, Callable[[], float]]] = [
        ("sync-deposit-busy", lambda: sync_deposits(scratch.url(store), n, s.warmup, True)),
        ("call", lambda: calls(scratch.url(store), s.hand_overs, s.warmup)),
        ("hand-over", lambda: calls(scratch.url(store), s.hand_overs, s.warmup, True)),
    ]
    runs: dict[str, list[float]] = {"async-deposit": [], "sync-deposit": []}
    runs |= {name: [] for name, _ in sides}
    batch = max(n // 100, 1)  # memory: 100 commands, some 3 ms; SQLite and PostgreSQL: 3
    for round_ in range(s.rounds):
        async_side, sync_side = side_by_side_deposits(
            scratch.url(store), scratch.url(store), n, s.warmup, batch
        )
        runs["async-deposit"].append(async_side * 1e6)
        runs["sync-deposit"].append(sync_side * 1e6)
        # Alternate which side goes first, so neither always runs on a warmer machine.
        for name, run_side in sides if round_ % 2 == 0 else sides[::-1]:
            runs[name].append(run_side() * 1e6)
    return runs


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """sync ÷ async per-command cost (alone and busy), and a call's share of a command."""
    found = {(r["store"], r["workload"]): r["value"] for r in rows if "error" not in r}
    wanted = [
        ("sync-deposit", "async-deposit", "µs per command", TARGET),
        ("sync-deposit-busy", "async-deposit", "µs per command, loop in the engine's thread", None),
        ("call", "sync-deposit", "running the loop's share of a command", None),
        ("hand-over", "sync-deposit-busy", "the thread hop's share of a command", None),
    ]
    rounds = {(r["store"], r["workload"]): r["rounds"] for r in rows if "error" not in r}
    out = []
    for store in STORES:
        for top, bottom, what, target in wanted:
            if (store, top) in found and (store, bottom) in found:
                value = found[store, top] / found[store, bottom]
                ratio = f"{top} / {bottom} ({what})"
                out.append({"store": store, "ratio": ratio, "value": value, "target": target})
        # The same ratio taken round by round (the two sides in alternating batches within
        # each round), then its median: a round caught by a slow phase of the machine moves
        # both of its sides alike, and drops out of it.
        pair = rounds.get((store, "sync-deposit")), rounds.get((store, "async-deposit"))
        if pair[0] and pair[1]:
            value = statistics.median(s / a for s, a in zip(*pair, strict=True))
            ratio = "sync-deposit / async-deposit, paired by round (median of the rounds' ratios)"
            out.append({"store": store, "ratio": ratio, "value": value, "target": TARGET})
    return out


def render(meta: dict[str, Any], rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    lines = [
        "# The synchronous facade: benchmark results",
        "",
        f"{meta['date']} · {meta['machine']} · {meta['cores']} cores (load average"
        f" {meta['load_average'][0]} before, {meta['load_average'][1]} after) · median of"
        f" {meta['rounds']} rounds{' · QUICK (not a measurement)' if meta['quick'] else ''}",
        "",
        "| store | workload | µs per op (median) | rounds | n per round |",
        "|---|---|---:|---|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['store']} | {r['workload']} | - | {r['error'][:160]} | |")
            continue
        rounds = ", ".join(f"{v:,.1f}" for v in r["rounds"])
        lines.append(
            f"| {r['store']} | {r['workload']} | {r['value']:,.1f} | {rounds} | {r['n']:,} |"
        )
    lines += ["", "| store | ratio | value | target |", "|---|---|---:|---:|"]
    for c in checks:
        target = c["target"]
        mark = "" if target is None else (" ✅" if c["value"] <= target else " ❌")
        wanted = "" if target is None else f"<= {target}x"
        lines.append(f"| {c['store']} | {c['ratio']} | {c['value']:.2f}x{mark} | {wanted} |")
    return "\n".join([*lines, ""])


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark as the command line ``argv`` says; the raw rows and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    store_options(parser, STORES, "rounds, the sides alternating")
    args = parser.parse_args(argv)
    stores = chosen("--stores", args.stores, STORES)
    settings = Settings.named(args.quick, args.rounds)
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    with tempfile.TemporaryDirectory(prefix="facta-sync-bench-") as directory:
        scratch = Scratch(Path(directory))
        try:
            for store in stores:
                try:
                    runs = measure(store, settings, scratch)
                except Exception as exc:  # an unreachable PostgreSQL: say so, go on
                    error = f"{type(exc).__name__}: {exc}"
                    rows.append({"store": store, "workload": "*", "error": error})
                    print(f"{store:9} ERROR {error}", flush=True)
                    continue
                for workload, values in runs.items():
                    one_call = workload in ("call", "hand-over")
                    n = settings.hand_overs if one_call else settings.count(store)
                    row = {"store": store, "workload": workload, "unit": "µs/op", "n": n}
                    row |= {"value": statistics.median(values), "rounds": values}
                    rows.append(row)
                    print(f"{store:9} {workload:14} {row['value']:>10,.1f} µs/op", flush=True)
        finally:
            scratch.drop()
    meta = run_facts(load_before, rounds=settings.rounds, quick=args.quick, stores=stores)
    checks = ratios(rows)
    result = {"meta": meta, "rows": rows, "ratios": checks}
    keep = stores == list(STORES) and not args.quick and not any("error" in r for r in rows)
    save("sync", result, render(meta, rows, checks), out=args.out, keep=keep)
    return result


def main() -> None:
    exit_if_failed(run())


if __name__ == "__main__":
    main()
