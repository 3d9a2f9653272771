"""pydantic models beside msgspec structs: what a command and a replayed event cost, in one run.

    python benchmarks/pydantic_codec.py [--stores memory,sqlite] [--rounds 3] [--quick]
                                        [--out benchmarks/results]

One bank account domain written twice with the same rules (the `money` checks of
facta.examples.bank): once with msgspec (the bank example itself) and once with pydantic
(facta.pydantic: PydanticCommand, PydanticEvent, a BaseModel state). Each workload runs on a
fresh store (a new memory engine, a new SQLite file) per round, the two models alternating
round by round so that the machine's other work falls on both alike; a row is the median
of its rounds:

- ``execute``: sequential ``Application.execute`` of one deposit command, round robin over
  the accounts (opened untimed first), with the state cache on as in production: a
  command decides, encodes one event, appends it and evolves the state. Value: µs per
  command (wall clock), with the process CPU µs per command beside it.
- ``replay``: loading one account of ``--stream`` events with a fresh Application and no
  snapshot: every event decoded and evolved. Value: µs per event (the best of 3 loads), with
  CPU µs per event beside it.

Prints the raw rows and the ratios (pydantic ÷ msgspec per store and workload, of wall
clock and of CPU time; issue 26's target is at most 1.5x for ``execute``) and writes them as JSON
(``pydantic-raw-<date>.json`` in ``--out``); a full run of both stores is also kept in
benchmarks/pydantic-results.json and benchmarks/PYDANTIC-RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facta import Aggregate, Application, DomainError, open_store
from facta.examples.bank import domain as bank
from facta.examples.bank.domain import money
from facta.pydantic import PydanticCommand, PydanticEvent

# Run as a script, this folder comes first on sys.path: the repository root is needed too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import chosen, exit_if_failed, run_facts, save, store_options

HERE = Path(__file__).resolve().parent
STORES = ("memory", "sqlite")
MODELS = ("msgspec", "pydantic")
TARGET = 1.5  # issue 26: a pydantic command costs at most 1.5x a msgspec one

# -- the pydantic twin of facta.examples.bank.domain -----------------------------------------


class OpenAccount(PydanticCommand):
    owner: str = Field(min_length=1, max_length=bank.MAX_OWNER_LENGTH)
    initial_balance: Decimal = Field(ge=0, le=bank.MAX_AMOUNT, decimal_places=2)


class Deposit(PydanticCommand):
    amount: Decimal = Field(gt=0, le=bank.MAX_AMOUNT, decimal_places=2)


class AccountOpened(PydanticEvent):
    owner: str
    initial_balance: Decimal


class MoneyDeposited(PydanticEvent):
    amount: Decimal


class AccountState(BaseModel):
    model_config = ConfigDict(frozen=True)
    opened: bool = False
    owner: str = ""
    balance: Decimal = Decimal("0.0")


class Account(Aggregate[AccountState, OpenAccount | Deposit, AccountOpened | MoneyDeposited]):
    name = "account"
    initial = AccountState()

    def decide(
        self, state: AccountState, command: OpenAccount | Deposit
    ) -> list[AccountOpened | MoneyDeposited]:
        match command:
            case OpenAccount(owner=owner, initial_balance=initial_balance):
                if state.opened:
                    raise DomainError("Account already open")
                balance = money(initial_balance, "initial_balance", allow_zero=True)
                return [AccountOpened(owner=owner, initial_balance=balance)]
            case _ if not state.opened:
                raise DomainError("Account not open")
            case Deposit(amount=amount):
                return [MoneyDeposited(amount=money(amount, "amount"))]
        raise DomainError(f"unknown command {type(command).__name__}")

    def evolve(self, state: AccountState, event: AccountOpened | MoneyDeposited) -> AccountState:
        match event:
            case AccountOpened(owner=owner, initial_balance=initial_balance):
                return AccountState(opened=True, owner=owner, balance=initial_balance)
            case MoneyDeposited(amount=amount):
                return AccountState(opened=True, owner=state.owner, balance=state.balance + amount)
        return state


class MsgspecAccount(bank.Account):
    snapshot_every = None  # as the pydantic twin: replays read every event


ONE, ZERO = Decimal("1.00"), Decimal("0.0")


@dataclass(frozen=True)
class Model:
    """One side of the comparison: its aggregate and how it builds its two commands."""

    aggregate: Aggregate[Any, Any, Any]
    open: Any
    deposit: Any


SIDES = {
    "msgspec": Model(MsgspecAccount(), bank.OpenAccount("Owner", ZERO), bank.Deposit(ONE)),
    "pydantic": Model(
        Account(), OpenAccount(owner="Owner", initial_balance=ZERO), Deposit(amount=ONE)
    ),
}


@dataclass(frozen=True)
class Settings:
    accounts: int
    commands: int
    stream: int
    rounds: int

    @classmethod
    def named(cls, quick: bool, rounds: int) -> Settings:
        if quick:  # a smoke test of the harness, not a measurement
            return cls(accounts=10, commands=100, stream=100, rounds=1)
        return cls(accounts=1_000, commands=5_000, stream=5_000, rounds=rounds)


def _url(store: str, scratch: Path, name: str) -> str:
    return "memory://" if store == "memory" else f"sqlite:///{scratch / name}.db"


async def execute(store: str, side: Model, s: Settings, scratch: Path, name: str) -> dict[str, Any]:
    engine = await open_store(_url(store, scratch, name))
    try:
        app = Application(engine)
        for i in range(s.accounts):
            await app.execute(side.aggregate, f"a{i}", side.open)
        for i in range(min(s.accounts, 200)):  # warm-up, untimed
            await app.execute(side.aggregate, f"a{i}", side.deposit)
        gc.collect()
        cpu, started = time.process_time(), time.perf_counter()
        for i in range(s.commands):
            await app.execute(side.aggregate, f"a{i % s.accounts}", side.deposit)
        seconds = time.perf_counter() - started
        cpu_us = (time.process_time() - cpu) / s.commands * 1e6
    finally:
        await engine.close()
    return {"value": seconds / s.commands * 1e6, "seconds": seconds, "n": s.commands,
            "cpu_us": cpu_us}  # fmt: skip


async def replay(store: str, side: Model, s: Settings, scratch: Path, name: str) -> dict[str, Any]:
    engine = await open_store(_url(store, scratch, name))
    try:
        app = Application(engine)
        await app.execute(side.aggregate, "long", side.open)
        for _ in range(s.stream - 1):
            await app.execute(side.aggregate, "long", side.deposit)
        times, cpu = [], []
        for _ in range(3):
            fresh = Application(engine)  # nothing cached, no class seen yet
            cpu_started, started = time.process_time(), time.perf_counter()
            loaded = await fresh.load(side.aggregate, "long")
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            assert loaded.version == s.stream
    finally:
        await engine.close()
    return {"value": min(times) / s.stream * 1e6, "seconds": sum(times), "n": s.stream,
            "cpu_us": min(cpu) / s.stream * 1e6}  # fmt: skip


WORKLOADS = {"execute": (execute, "us/command"), "replay": (replay, "us/event")}


def measure(stores: Sequence[str], s: Settings, scratch: Path) -> list[dict[str, Any]]:
    """The raw rows: one per store, model and workload, the median of its rounds."""
    rows = []
    for store in stores:
        for workload, (function, unit) in WORKLOADS.items():
            runs: dict[str, list[dict[str, Any]]] = {model: [] for model in MODELS}
            for r in range(s.rounds):
                for model in MODELS if r % 2 == 0 else MODELS[::-1]:
                    name = f"{store}-{workload}-{model}-{r}"
                    runs[model].append(asyncio.run(function(store, SIDES[model], s, scratch, name)))
            for model in MODELS:
                values = [run["value"] for run in runs[model]]
                median = statistics.median(values)
                row = {"store": store, "model": model, "workload": workload, "value": median,
                       "unit": unit, "n": runs[model][0]["n"], "rounds": values}  # fmt: skip
                row["cpu_us"] = statistics.median(run["cpu_us"] for run in runs[model])
                rows.append(row)
                print(
                    f"{store:7} {model:9} {workload:8} {median:9.2f} {unit:11}"
                    f" rounds {', '.join(f'{v:.2f}' for v in values)}",
                    flush=True,
                )
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic ÷ msgspec per store and workload (a cost: lower is better)."""
    found = {(r["store"], r["model"], r["workload"]): r for r in rows}
    out = []
    for (store, model, workload), row in found.items():
        twin = found.get((store, "msgspec", workload))
        if model == "pydantic" and twin is not None:
            target = TARGET if workload == "execute" else None
            value = row["value"] / twin["value"]
            out.append({"store": store, "ratio": f"{workload}: pydantic / msgspec",
                        "value": value, "target": target,
                        "met": None if target is None else value <= target})  # fmt: skip
            # CPU time: what the models cost, less the waits for the disk and for other
            # processes on a busy machine.
            out.append({"store": store, "ratio": f"{workload} CPU: pydantic / msgspec",
                        "value": row["cpu_us"] / twin["cpu_us"], "target": None,
                        "met": None})  # fmt: skip
    return out


def render(meta: dict[str, Any], rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    lines = [
        "# pydantic models beside msgspec structs: benchmark results",
        "",
        f"{meta['date']} · {meta['machine']} · {meta['cores']} cores (load average"
        f" {meta['load_average'][0]} before, {meta['load_average'][1]} after) · pydantic"
        f" {meta['pydantic']} · msgspec {meta['msgspec']} · median of {meta['rounds']} rounds"
        f"{' · QUICK (not a measurement)' if meta['quick'] else ''}",
        "",
        "| store | model | workload | value | unit | n | CPU µs |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['store']} | {r['model']} | {r['workload']} | {r['value']:.2f}"
                     f" | {r['unit']} | {r['n']:,} | {r['cpu_us']:.2f} |")  # fmt: skip
    lines += ["", "| store | ratio | value | target |", "|---|---|---:|---:|"]
    for c in checks:
        mark = "" if c["met"] is None else (" ✅" if c["met"] else " ❌")
        wanted = "" if c["target"] is None else f"<= {c['target']}x"
        lines.append(f"| {c['store']} | {c['ratio']} | {c['value']:.2f}x{mark} | {wanted} |")
    return "\n".join([*lines, ""])


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark as the command line ``argv`` says; the raw rows and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    store_options(parser, STORES, "per model and workload")
    args = parser.parse_args(argv)
    stores = chosen("--stores", args.stores, STORES)
    settings = Settings.named(args.quick, args.rounds)

    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    with tempfile.TemporaryDirectory(prefix="facta-pydantic-bench-") as scratch:
        rows = measure(stores, settings, Path(scratch))

    import msgspec
    import pydantic

    meta = run_facts(
        load_before,
        pydantic=pydantic.VERSION,
        msgspec=msgspec.__version__,
        rounds=settings.rounds,
        accounts=settings.accounts,
        commands=settings.commands,
        stream=settings.stream,
        quick=args.quick,
        stores=stores,
    )
    checks = ratios(rows)
    result = {"meta": meta, "rows": rows, "ratios": checks}
    keep = stores == list(STORES) and not args.quick
    save("pydantic", result, render(meta, rows, checks), out=args.out, keep=keep)
    return result


if __name__ == "__main__":
    exit_if_failed(run())
