"""One library's measures on one filled log, in a fresh process (benchmarks/growth.py runs it
once per library, store and size, so that its peak memory is that of one size's work):

    python -m benchmarks.growth_measure fill|measure LIBRARY STORE SIZE OUT
                                        [COMMANDS REQUESTS CATCH_UP]

``fill`` fills the log (or finds it filled) and prints its marker as JSON; ``measure`` puts
the log back as filled, measures, puts it back again and prints one JSON row. In order
(the reads first, the deposits, which append, last):

- ``load_ms``, ``load_snapshot_ms``: loading the long stream (10,000 events), without and
  with its snapshot, median of 7 loads by a fresh application each;
- ``category_eps``: one category read from the middle of the log, in pages of 1,000, decoded
  (eventsourcing has no categories: its notifications filtered by the account topics);
- ``log_eps``: the whole log, in pages of 10,000, decoded;
- ``projection_eps``: the bank's accounts projection caught up on the last CATCH_UP events
  (whole blocks of accounts, its checkpoint set there first), as
  ``benchmarks/projections.py`` and ``benchmarks/es_bank.py`` run it;
- ``stream_page_p50/p99``, ``feed_page_p50/p99`` (facta only: eventsourcing has no HTTP
  API): ``GET /accounts/{id}/events`` (a random account's 10 events) and ``GET
  /events?after=&limit=100`` (from a random place) over HTTP to ``facta serve``, each
  answer timed by the client from request to last byte on a keep-alive connection;
- ``seq_cold``, ``seq_warm``, ``c64_cold``, ``c64_warm``: deposits per second, from one client
  and from 64 concurrent ones (each on accounts of its own), first on accounts the
  application has not loaded (its cache cold: each loads its account from the log), then
  on the same accounts again (cache warm);
- ``rss_mb``: this process's peak resident memory; ``server_rss_mb`` that of the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from benchmarks.growth_es import es_fill, es_rows_sample
from benchmarks.growth_fill import (
    BLOCK,
    LONG_STREAM,
    POSTGRES,
    Layout,
    account,
    entity_id,
    es_env,
    es_id,
    facta_fill,
    facta_url,
    reset,
)
from benchmarks.workloads import UnsnapshottedAccount
from facta import Application, Codec, Position, open_store
from facta.examples.bank.domain import Deposit
from facta.examples.bank.read_model import Accounts, AccountsProjection
from facta.projections import ProjectionRunner, ReadStore
from facta.projections._target import Target
from facta.store.engine import Engine
from facta.store.read_models import Batch

ROOT = Path(__file__).resolve().parent.parent
CATEGORY_EVENTS = 100_000
CLIENTS = 64
ONE = Decimal("1.0")


def _median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 3)


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return round(statistics.median(times) * 1000, 3), round(p99 * 1000, 3)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def _accounts(layout: Layout, commands: int) -> tuple[list[int], list[int]]:
    """Two disjoint random sets of ``commands`` accounts (sequential, concurrent): fewer at
    tiny sizes, so that every deposit of a cold pass is on an account not loaded before."""
    commands = min(commands, layout.accounts // 4)
    chosen = random.Random(7).sample(range(layout.accounts), 2 * commands)
    return chosen[:commands], chosen[commands:]


# -- facta -----------------------------------------------------------------------------------


async def _before(engine: Engine, n: int) -> Position:
    """The position just before account ``n``'s first event (the first of its block): where
    a reader starts to read from it on."""
    first = (await engine.read_stream(f"account-{entity_id(n)}", limit=1))[0].position
    return Position(first.commit, first.sequence - 1)


async def facta_reads(url: str, layout: Layout, catch_up: int) -> dict[str, Any]:
    engine = await open_store(url, create=False)
    row: dict[str, Any] = {}
    try:
        codec = Codec()
        codec.register_aggregate(account)
        decode = codec.decode
        for key, aggregate in (("load_ms", UnsnapshottedAccount()), ("load_snapshot_ms", account)):
            times = []
            for _ in range(7):
                app = Application(engine)  # a fresh application: nothing cached
                started = time.perf_counter()
                loaded = await app.load(aggregate, LONG_STREAM.removeprefix("account-"))
                times.append(time.perf_counter() - started)
                assert loaded.version == layout.long, loaded.version
                assert loaded.state.balance == layout.long - 1, loaded.state
            row[key] = _median_ms(times)

        middle = layout.blocks // 2 * BLOCK  # the first account of the middle block
        wanted = min(CATEGORY_EVENTS, (layout.accounts - middle) * 10)
        after, count = await _before(engine, middle), 0
        started = time.perf_counter()
        while count < wanted:
            page = await engine.read_all(after=after, limit=1000, categories=["account"])
            assert page, f"the category ended after {count} events"
            for record in page:
                decode(record)
            count, after = count + len(page), page[-1].position
        row["category_eps"] = _rate(count, time.perf_counter() - started)
        row["category_events"] = count

        count, after = 0, Position(0, 0)
        started = time.perf_counter()
        while page := await engine.read_all(after=after, limit=10_000):
            for record in page:
                decode(record)
            count, after = count + len(page), page[-1].position
        row["log_eps"] = _rate(count, time.perf_counter() - started)
        assert count == layout.size, count

        first, events = layout.tail(catch_up)
        await _seek(engine, await _before(engine, first))
        runner = ProjectionRunner(engine, [AccountsProjection()])
        started = time.perf_counter()
        await runner.catch_up()
        row["projection_eps"] = _rate(events, time.perf_counter() - started)
        row["projection_events"] = events
        await runner.close()
        read_store = ReadStore(engine)
        totals = await Accounts(read_store).totals()
        await read_store.close()
        assert totals.accounts == layout.accounts - first, totals
        assert totals.balance == 9 * (layout.accounts - first), totals

        rng = random.Random(11)
        row["positions"] = [
            str(await _before(engine, rng.randrange(layout.accounts))) for _ in range(50)
        ]
    finally:
        await engine.close()
    return row


async def _seek(engine: Engine, position: Position) -> None:
    """Set the accounts projection's checkpoint at ``position``, as if it had handled every
    event before (no public call does: a projection starts at the beginning of the log)."""
    target = Target(AccountsProjection())
    worker = await engine.read_models.worker()
    try:
        slot = await worker.claim(target.name, target.version, target.spec, "growth", 60.0)
        assert not isinstance(slot, str), slot
        unit = worker.unit(slot, target.spec)
        await unit.begin()
        await unit.commit(Batch(position=position))
        await worker.release(slot, "growth")
    finally:
        await worker.close()


def facta_http(url: str, layout: Layout, positions: list[str], requests: int) -> dict[str, Any]:
    """The two pages over HTTP, from ``facta serve`` with the accounts resource alone (the
    bank service would build its accounts read model over the whole log first)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FACTA_API_KEYS", None)
    command = [
        str(Path(sys.executable).parent / "facta"),
        "serve",
        "--store",
        url,
        "--port",
        str(port),
        "--app",
        "benchmarks.http_apps:commands_only",
        "--no-projections",
        "--no-console",
        "--log-level",
        "warning",
    ]
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("facta serve did not start") from None
                    time.sleep(0.2)
            rng = random.Random(13)
            row: dict[str, Any] = {}
            with httpx.Client(base_url=base, timeout=60) as client:
                asks: dict[str, Any] = {
                    "stream_page": lambda: (
                        f"/accounts/{entity_id(rng.randrange(layout.accounts))}/events",
                        {},
                        10,
                    ),
                    "feed_page": lambda: ("/events", {"after": rng.choice(positions)}, 100),
                }
                for name, ask in asks.items():
                    times = []
                    for i in range(20 + requests):  # the first 20 warm up
                        path, params, expected = ask()
                        started = time.perf_counter()
                        answer = client.get(path, params=params)
                        elapsed = time.perf_counter() - started
                        answer.raise_for_status()
                        body = answer.json()
                        got = len(body if isinstance(body, list) else body["events"])
                        assert 0 < got <= expected, (path, got)
                        if i >= 20:
                            times.append(elapsed)
                    row[f"{name}_p50"], row[f"{name}_p99"] = _percentiles(times)
            row["server_rss_mb"] = _peak_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    return row


def _peak_mb(pid: int) -> float | None:
    """A process's peak resident memory (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


async def facta_deposits(url: str, layout: Layout, commands: int) -> dict[str, Any]:
    sequential, concurrent = _accounts(layout, commands)
    engine = await open_store(url, create=False)
    row: dict[str, Any] = {}
    try:
        deposit = Deposit(ONE)
        app = Application(engine, cache_size=max(10_000, 2 * commands))
        for label in ("seq_cold", "seq_warm"):
            started = time.perf_counter()
            for n in sequential:
                await app.execute(account, entity_id(n), deposit)
            row[label] = _rate(len(sequential), time.perf_counter() - started)

        app = Application(engine, cache_size=max(10_000, 2 * commands))
        mine = [concurrent[c::CLIENTS] for c in range(CLIENTS)]

        async def client(ids: list[int]) -> None:
            for n in ids:
                await app.execute(account, entity_id(n), deposit)

        for label in ("c64_cold", "c64_warm"):
            started = time.perf_counter()
            await asyncio.gather(*(client(ids) for ids in mine))
            row[label] = _rate(len(concurrent), time.perf_counter() - started)
        row["commands"] = len(sequential)
    finally:
        await engine.close()
    return row


def facta_measure(
    store: str, out: Path, size: int, commands: int, requests: int, catch_up: int
) -> dict[str, Any]:
    layout = Layout.of(size)
    marker = asyncio.run(facta_fill(store, out, size))
    asyncio.run(reset("facta", store, out, size, marker["last_id"]))
    url = facta_url(store, out, size)
    try:
        row = asyncio.run(facta_reads(url, layout, catch_up))
        row.update(facta_http(url, layout, row.pop("positions"), requests))
        row.update(asyncio.run(facta_deposits(url, layout, commands)))
    finally:
        asyncio.run(reset("facta", store, out, size, marker["last_id"]))
    return {**row, **_marker_facts(marker, size)}


def _marker_facts(marker: dict[str, Any], size: int) -> dict[str, Any]:
    return {
        "fill_seconds": marker["seconds"],
        "fill_reused": marker["reused"],
        "table_bytes_per_event": round(marker["table_bytes"] / size, 1),
        "index_bytes_per_event": round(marker["index_bytes"] / size, 1),
    }


# -- eventsourcing ---------------------------------------------------------------------------


def es_measure(store: str, out: Path, size: int, commands: int, catch_up: int) -> dict[str, Any]:
    layout = Layout.of(size)
    marker = asyncio.run(es_fill(store, out, size))
    asyncio.run(reset("eventsourcing", store, out, size, marker["last_id"]))
    try:
        row = es_reads(store, out, size, layout, catch_up)
        row.update(es_deposits(store, out, size, layout, commands))
    finally:
        asyncio.run(reset("eventsourcing", store, out, size, marker["last_id"]))
    return {**row, **_marker_facts(marker, size)}


def _notification_of(app: Any, layout: Layout, n: int) -> int:
    """The notification id of account ``n``'s first event (checked: ids follow the fill)."""
    found = layout.index(n, 1) + 1
    [notification] = app.recorder.select_notifications(found, 1)
    assert notification.originator_id.hex == es_id(n), (n, notification)
    return found


def es_reads(store: str, out: Path, size: int, layout: Layout, catch_up: int) -> dict[str, Any]:
    from benchmarks.es_bank import Bank, SnapshottingBank

    env = es_env(store, out, size)
    row: dict[str, Any] = {}
    long_id = uuid.UUID(es_id("long"))
    for key, cls in (("load_ms", Bank), ("load_snapshot_ms", SnapshottingBank)):
        app = cls(env=env)
        times = []
        for _ in range(7):
            started = time.perf_counter()
            loaded: Any = app.repository.get(long_id)
            times.append(time.perf_counter() - started)
            assert loaded.version == layout.long, loaded.version
        row[key] = _median_ms(times)
        app.close()

    app = Bank(env=env)
    to_event = app.mapper.to_domain_event
    opened_topic, _, deposited_topic, _ = es_rows_sample()
    middle = layout.blocks // 2 * BLOCK  # the first account of the middle block
    wanted = min(CATEGORY_EVENTS, (layout.accounts - middle) * 10)
    start, count = _notification_of(app, layout, middle), 0
    started = time.perf_counter()
    while count < wanted:
        page = app.recorder.select_notifications(
            start, 1000, topics=(opened_topic, deposited_topic)
        )
        assert page, f"the notifications ended after {count}"
        for notification in page:
            to_event(notification)
        count, start = count + len(page), page[-1].id + 1
    row["category_eps"] = _rate(count, time.perf_counter() - started)
    row["category_events"] = count

    count, start = 0, 1
    started = time.perf_counter()
    while page := app.recorder.select_notifications(start, 10_000):
        for notification in page:
            to_event(notification)
        count, start = count + len(page), page[-1].id + 1
    row["log_eps"] = _rate(count, time.perf_counter() - started)
    assert count == layout.size, count

    first, events = layout.tail(catch_up)
    row["projection_eps"] = _rate(events, _es_catch_up(app, store, env, layout, first, events))
    row["projection_events"] = events
    app.close()
    return row


def _es_catch_up(
    app: Any, store: str, env: dict[str, str], layout: Layout, first: int, events: int
) -> float:
    """eventsourcing's accounts projection over the notifications from account ``first``'s
    on, fed as benchmarks/workloads.py's es_projection feeds it; its view in a database of
    its own (dropped after). The seconds it took."""
    from eventsourcing.persistence import InfrastructureFactory, Tracking
    from eventsourcing.utils import Environment

    from benchmarks.es_bank import AccountsProjection as EsAccounts
    from benchmarks.es_bank import accounts_view_class

    with tempfile.TemporaryDirectory() as scratch:
        schema = f"bench_growth_view_{uuid.uuid4().hex[:8]}"
        if store == "sqlite":
            view_env = {**env, "SQLITE_DBNAME": str(Path(scratch) / "view.db")}
        else:
            view_env = {**env, "POSTGRES_SCHEMA": schema}
            _psql(f"CREATE SCHEMA {schema}")
        try:
            view_class = accounts_view_class(env["PERSISTENCE_MODULE"])
            environment = Environment(EsAccounts.name, view_env)
            factory = InfrastructureFactory.construct(env=environment)
            projection = EsAccounts(view=factory.tracking_recorder(view_class))
            to_event = app.mapper.to_domain_event
            start, count = _notification_of(app, layout, first), 0
            started = time.perf_counter()
            while page := app.recorder.select_notifications(start, 1000):
                for notification in page:
                    projection.process_event(
                        to_event(notification), Tracking(app.name, notification.id)
                    )
                count, start = count + len(page), page[-1].id + 1
            seconds = time.perf_counter() - started
            factory.close()
            assert count == events, (count, events)
        finally:
            if store != "sqlite":
                _psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return seconds


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-X", "-q", POSTGRES, "-c", sql], check=True, capture_output=True)


def es_deposits(store: str, out: Path, size: int, layout: Layout, commands: int) -> dict[str, Any]:
    from benchmarks.es_bank import Bank

    sequential, concurrent = _accounts(layout, commands)
    # Its aggregate cache on (off by default), holding every account deposited to: the warm
    # passes then find them there, as facta's Application finds them in its cache.
    env = {**es_env(store, out, size), "AGGREGATE_CACHE_MAXSIZE": str(max(10_000, 2 * commands))}
    row: dict[str, Any] = {}
    app = Bank(env=env)
    ids = [uuid.UUID(es_id(n)) for n in sequential]
    for label in ("seq_cold", "seq_warm"):
        started = time.perf_counter()
        for account_id in ids:
            app.deposit(account_id, ONE)
        row[label] = _rate(len(ids), time.perf_counter() - started)
    app.close()

    app = Bank(env=env)
    mine = [[uuid.UUID(es_id(n)) for n in concurrent[c::CLIENTS]] for c in range(CLIENTS)]

    def client(ids: list[uuid.UUID]) -> None:
        for account_id in ids:
            app.deposit(account_id, ONE)

    for label in ("c64_cold", "c64_warm"):
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, mine))
        row[label] = _rate(len(concurrent), time.perf_counter() - started)
    app.close()
    row["commands"] = len(sequential)
    return row


# -- the worker ------------------------------------------------------------------------------


def main() -> None:
    action, library, store, size_text, out_text, *rest = sys.argv[1:]
    size, out = int(size_text), Path(out_text)
    commands, requests, catch_up = (int(x) for x in rest) if rest else (2_000, 300, 1_000_000)
    if action == "fill":
        fill = facta_fill if library == "facta" else es_fill
        result = asyncio.run(fill(store, out, size))
    elif library == "facta":
        result = facta_measure(store, out, size, commands, requests, catch_up)
    else:
        result = es_measure(store, out, size, commands, catch_up)
    result["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
