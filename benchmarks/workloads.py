"""The benchmark workloads, each written once for facta and once for `eventsourcing`.

A workload function takes a `Target` (where the store is) and a `Scale`, sets up its data
untimed, times only the work being measured, and returns a `Measurement`. `worker.py` runs
one workload in a fresh process so that runs do not share caches or memory.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from facta import Application, Codec, EventStore, NewEvent, Snapshot, open_store
from facta.examples.bank.domain import Account, AccountOpened, Deposit, MoneyDeposited, OpenAccount


@dataclass(frozen=True)
class Scale:
    accounts: int = 1_000
    commands: int = 20_000
    clients: int = 64
    opens: int = 10_000
    stream: int = 10_000
    log: int = 1_000_000
    projection: int = 100_000

    @classmethod
    def named(cls, name: str) -> Scale:
        if name == "full":
            return cls()
        if name == "quick":  # a smoke test of the harness, not a measurement
            return cls(50, 500, 16, 300, 500, 5_000, 2_000)
        raise ValueError(f"unknown scale {name!r}: full or quick")


@dataclass(frozen=True)
class Target:
    """Where a run's store lives: a facta store URL, and the same place as an
    `eventsourcing` environment."""

    backend: str
    facta_url: str
    es_env: dict[str, str]


@dataclass
class Measurement:
    value: float
    unit: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


ONE = Decimal("1.00")
ZERO = Decimal("0.0")


# -- facta -------------------------------------------------------------------------------


class UnsnapshottedAccount(Account):
    snapshot_every = None


account = Account()


async def _facta_open_accounts(app: Application, count: int) -> None:
    for i in range(count):
        await app.execute(account, f"a{i}", OpenAccount("Owner", ZERO))


async def facta_sequential(target: Target, scale: Scale) -> Measurement:
    store = await open_store(target.facta_url)
    app = Application(store)
    await _facta_open_accounts(app, scale.accounts)
    deposit = Deposit(ONE)
    cpu = time.process_time()
    started = time.perf_counter()
    for i in range(scale.commands):
        await app.execute(account, f"a{i % scale.accounts}", deposit)
    seconds = time.perf_counter() - started
    cpu_us = (time.process_time() - cpu) / scale.commands * 1e6
    await store.close()
    return Measurement(
        scale.commands / seconds, "commands/s", seconds, {"cpu_us_per_command": round(cpu_us, 1)}
    )


async def facta_concurrent(target: Target, scale: Scale) -> Measurement:
    store = await open_store(target.facta_url)
    app = Application(store)
    await _facta_open_accounts(app, scale.accounts)
    deposit = Deposit(ONE)
    per_client = scale.commands // scale.clients

    async def client(c: int) -> None:
        mine = range(c, scale.accounts, scale.clients)  # disjoint accounts per client
        for i in range(per_client):
            await app.execute(account, f"a{mine[i % len(mine)]}", deposit)

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(scale.clients)))
    seconds = time.perf_counter() - started
    await store.close()
    return Measurement(per_client * scale.clients / seconds, "commands/s", seconds)


async def facta_open(target: Target, scale: Scale) -> Measurement:
    store = await open_store(target.facta_url)
    app = Application(store)
    started = time.perf_counter()
    await _facta_open_accounts(app, scale.opens)
    seconds = time.perf_counter() - started
    await store.close()
    return Measurement(scale.opens / seconds, "accounts/s", seconds)


async def _facta_long_stream(store: EventStore, length: int) -> None:
    """One account with `length` events, and snapshots at length - 100 and length."""
    codec = Codec()
    codec.register_aggregate(account)
    events = [codec.encode(AccountOpened("Owner", ZERO))]
    events += [codec.encode(MoneyDeposited(ONE)) for _ in range(length - 1)]
    for start in range(0, length, 1000):
        await store.append("account-long", events[start : start + 1000], start)
    for version in (length - 100, length):
        state = account.initial
        for record in await store.read_stream("account-long", to_version=version):
            state = account.evolve(state, codec.decode(record))  # type: ignore[arg-type]
        data = msgspec.json.encode(state)
        await store.save_snapshot(Snapshot("account-long", version, 1, data, time.time()))


def _timed_loads(load: Callable[[], Any], repeat: int = 7) -> Measurement:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        load()
        times.append(time.perf_counter() - started)
    return Measurement(statistics.median(times) * 1000, "ms", sum(times))


async def _facta_load(target: Target, scale: Scale, kind: str) -> Measurement:
    store = await open_store(target.facta_url)
    await _facta_long_stream(store, scale.stream)
    aggregate = UnsnapshottedAccount() if kind == "none" else account
    version = scale.stream - 1 if kind == "version" else None
    times = []
    for _ in range(7):
        app = Application(store)  # a fresh application: nothing cached
        started = time.perf_counter()
        loaded = await app.load(aggregate, "long", version=version)
        times.append(time.perf_counter() - started)
        assert loaded.version == (version or scale.stream)
    await store.close()
    return Measurement(statistics.median(times) * 1000, "ms", sum(times))


async def facta_load_no_snapshot(target: Target, scale: Scale) -> Measurement:
    return await _facta_load(target, scale, "none")


async def facta_load_snapshot(target: Target, scale: Scale) -> Measurement:
    return await _facta_load(target, scale, "latest")


async def facta_load_version(target: Target, scale: Scale) -> Measurement:
    return await _facta_load(target, scale, "version")


async def _facta_fill_log(store: EventStore, total: int, per_stream: int = 1000) -> None:
    codec = Codec()
    codec.register_aggregate(account)
    opened = codec.encode(AccountOpened("Owner", ZERO)).data
    deposited = codec.encode(MoneyDeposited(ONE)).data
    for s in range(total // per_stream):
        events = [NewEvent("AccountOpened", opened)]
        events += [NewEvent("MoneyDeposited", deposited) for _ in range(per_stream - 1)]
        await store.append(f"account-{s}", events, 0)


async def facta_read_log(target: Target, scale: Scale) -> Measurement:
    store = await open_store(target.facta_url)
    await _facta_fill_log(store, scale.log)
    codec = Codec()
    codec.register_aggregate(account)
    decode = codec.decode
    started = time.perf_counter()
    count = 0
    page = await store.read_all(limit=10_000)
    while page:
        for record in page:
            decode(record)
        count += len(page)
        page = await store.read_all(after=page[-1].position, limit=10_000)
    seconds = time.perf_counter() - started
    assert count == scale.log
    await store.close()
    return Measurement(count / seconds, "events/s", seconds)


BULK = 100
"""Events per append in the bulk workload."""


async def facta_bulk(target: Target, scale: Scale) -> Measurement:
    """Appends of BULK deposits at a time to the accounts' streams, round robin, each event
    made and encoded within the timing (as the other side's are): events/s. The appends'
    share of the time is given beside it (``append_only_events_per_s``: the rate of the
    store's appends alone, what the raw limit of the schema compares with)."""
    store = await open_store(target.facta_url)
    app = Application(store)
    accounts = max(scale.accounts // 10, 1)
    await _facta_open_accounts(app, accounts)
    encode = app.codec.encode
    versions = [1] * accounts
    batches = scale.commands * 2 // BULK
    appending = 0.0
    started = time.perf_counter()
    for i in range(batches):
        k = i % accounts
        events = [encode(MoneyDeposited(ONE)) for _ in range(BULK)]
        before = time.perf_counter()
        await store.append(f"account-a{k}", events, versions[k])
        appending += time.perf_counter() - before
        versions[k] += BULK
    seconds = time.perf_counter() - started
    await store.close()
    total = batches * BULK
    extra = {"append_only_events_per_s": round(total / appending)}
    return Measurement(total / seconds, "events/s", seconds, extra)


# -- eventsourcing -----------------------------------------------------------------------


def _es_app(target: Target, cls: Any = None, **extra: str) -> Any:
    from benchmarks.es_bank import Bank

    return (cls or Bank)(env={**target.es_env, **extra})


def _es_open_accounts(app: Any, count: int) -> list[Any]:
    return [app.open("Owner", ZERO) for _ in range(count)]


def es_sequential(target: Target, scale: Scale) -> Measurement:
    app = _es_app(target)
    ids = _es_open_accounts(app, scale.accounts)
    started = time.perf_counter()
    for i in range(scale.commands):
        app.deposit(ids[i % scale.accounts], ONE)
    seconds = time.perf_counter() - started
    return Measurement(scale.commands / seconds, "commands/s", seconds)


def es_concurrent(target: Target, scale: Scale) -> Measurement:
    app = _es_app(target)
    ids = _es_open_accounts(app, scale.accounts)
    per_client = scale.commands // scale.clients

    def client(c: int) -> None:
        mine = ids[c :: scale.clients]  # disjoint accounts per client
        for i in range(per_client):
            app.deposit(mine[i % len(mine)], ONE)

    started = time.perf_counter()
    with ThreadPoolExecutor(scale.clients) as pool:
        list(pool.map(client, range(scale.clients)))
    seconds = time.perf_counter() - started
    return Measurement(per_client * scale.clients / seconds, "commands/s", seconds)


def es_bulk(target: Target, scale: Scale) -> Measurement:
    """The same with `eventsourcing`: BULK deposits on an account aggregate kept in hand,
    then one save of its pending events."""
    from benchmarks.es_bank import BankAccount

    app = _es_app(target)
    accounts = [BankAccount("Owner", ZERO) for _ in range(max(scale.accounts // 10, 1))]
    app.save(*accounts)
    batches = scale.commands * 2 // BULK
    started = time.perf_counter()
    for i in range(batches):
        held = accounts[i % len(accounts)]
        for _ in range(BULK):
            held.deposit(ONE)
        app.save(held)
    seconds = time.perf_counter() - started
    return Measurement(batches * BULK / seconds, "events/s", seconds)


def es_open(target: Target, scale: Scale) -> Measurement:
    app = _es_app(target)
    started = time.perf_counter()
    _es_open_accounts(app, scale.opens)
    seconds = time.perf_counter() - started
    return Measurement(scale.opens / seconds, "accounts/s", seconds)


def _es_long_stream(target: Target, length: int) -> Any:
    from benchmarks.es_bank import BankAccount, SnapshottingBank

    app = _es_app(target, SnapshottingBank)
    account_id = app.open("Owner", ZERO)
    written = 1
    while written < length:
        aggregate: BankAccount = app.repository.get(account_id)
        for _ in range(min(1000, length - written)):
            aggregate.deposit(ONE)
        app.save(aggregate)
        written = aggregate.version
    app.take_snapshot(account_id, version=length - 100)
    app.take_snapshot(account_id, version=length)
    return account_id


def _es_load(target: Target, scale: Scale, kind: str) -> Measurement:
    from benchmarks.es_bank import Bank, SnapshottingBank

    if target.backend == "memory":
        # POPO applications keep events in their own instance: a second application (needed
        # to load without a cache or snapshot) cannot see them, so there is no fair row.
        raise NotImplementedError("eventsourcing's POPO store cannot be shared between apps")

    account_id = _es_long_stream(target, scale.stream)
    app = _es_app(target, Bank if kind == "none" else SnapshottingBank)
    version = scale.stream - 1 if kind == "version" else None
    return _timed_loads(lambda: app.repository.get(account_id, version=version))


def es_load_no_snapshot(target: Target, scale: Scale) -> Measurement:
    return _es_load(target, scale, "none")


def es_load_snapshot(target: Target, scale: Scale) -> Measurement:
    return _es_load(target, scale, "latest")


def es_load_version(target: Target, scale: Scale) -> Measurement:
    return _es_load(target, scale, "version")


def _es_fill_log(app: Any, total: int, per_stream: int = 1000) -> None:
    from benchmarks.es_bank import BankAccount

    for _ in range(total // per_stream):
        aggregate = BankAccount("Owner", ZERO)
        for _ in range(per_stream - 1):
            aggregate.deposit(ONE)
        app.save(aggregate)


def es_read_log(target: Target, scale: Scale) -> Measurement:
    app = _es_app(target)
    _es_fill_log(app, scale.log)
    to_event = app.mapper.to_domain_event
    started = time.perf_counter()
    count, start = 0, 1
    while True:
        page = app.recorder.select_notifications(start, 10_000)
        for notification in page:
            to_event(notification)
        count += len(page)
        if len(page) < 10_000:
            break
        start = page[-1].id + 1
    seconds = time.perf_counter() - started
    assert count == scale.log, count
    return Measurement(count / seconds, "events/s", seconds)


def es_projection(target: Target, scale: Scale) -> Measurement:
    """eventsourcing's Projection over its tracking recorder, fed the way its
    ProjectionRunner feeds it (one event, one view transaction with its tracking record).
    The events are pulled from the application's recorder here because 9.5.6's SQLite
    recorder has no subscriptions for ProjectionRunner to use."""
    from eventsourcing.persistence import InfrastructureFactory, Tracking
    from eventsourcing.utils import Environment

    from benchmarks.es_bank import AccountsProjection, accounts_view_class

    app = _es_app(target)
    _es_fill_log(app, scale.projection, per_stream=100)
    view_class = accounts_view_class(target.es_env["PERSISTENCE_MODULE"])
    environment = Environment(AccountsProjection.name, target.es_env)
    view = InfrastructureFactory.construct(env=environment).tracking_recorder(view_class)
    projection = AccountsProjection(view=view)
    to_event = app.mapper.to_domain_event
    started = time.perf_counter()
    count, start = 0, 1
    while True:
        page = app.recorder.select_notifications(start, 1000)
        for notification in page:
            projection.process_event(to_event(notification), Tracking(app.name, notification.id))
        count += len(page)
        if len(page) < 1000:
            break
        start = page[-1].id + 1
    seconds = time.perf_counter() - started
    assert count == scale.projection, count
    return Measurement(count / seconds, "events/s", seconds)


# -- registry ----------------------------------------------------------------------------


async def facta_projection(target: Target, scale: Scale) -> Measurement:
    from benchmarks.projections import facta_projection as catch_up

    measurement: Measurement = await catch_up(target, scale)
    return measurement


FactaWorkload = Callable[[Target, Scale], Awaitable[Measurement]]
EsWorkload = Callable[[Target, Scale], Measurement]

WORKLOADS: dict[str, tuple[str, FactaWorkload | None, EsWorkload | None]] = {
    # name: (what it measures, facta, eventsourcing)
    "1-sequential": ("sequential deposit commands", facta_sequential, es_sequential),
    "2-concurrent": ("deposits, 64 concurrent clients", facta_concurrent, es_concurrent),
    "3-open": ("opening accounts", facta_open, es_open),
    "4a-load": ("load 10k-event stream, no snapshot", facta_load_no_snapshot, es_load_no_snapshot),
    "4b-load-snapshot": ("load 10k-event stream, snapshot", facta_load_snapshot, es_load_snapshot),
    "4c-load-version": ("load at version 9,999", facta_load_version, es_load_version),
    "5-read-log": ("read whole log, decoded", facta_read_log, es_read_log),
    "6-projection": ("projection catch-up", facta_projection, es_projection),
    "7-bulk-append": (f"appends of {BULK} events", facta_bulk, es_bulk),
}


def cpu_count() -> int:
    return os.cpu_count() or 1
