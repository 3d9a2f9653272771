"""Dynamic consistency boundaries: facta beside `eventsourcing`'s DCB recorders, in one run.

    python benchmarks/dcb.py [--stores memory,sqlite,postgres] [--libraries facta,eventsourcing]
                             [--seconds 3] [--quick] [--out benchmarks/results]

Each workload runs on a fresh store (a new memory engine or popo recorder, a new SQLite file,
a new PostgreSQL schema dropped afterwards) for up to ``--seconds`` (after an untimed
warm-up), and gives one raw row: store, library, workload, value, unit, n, seconds.

- ``plain-append-1`` (facta only): ``engine.append(stream, [event])``, one event (to one of
  1,000 streams), one client.
- ``tagged-append-1`` (facta only): events like ``cond-append-1``'s (tagged, each in a stream
  of its own) appended without a condition: the difference is the condition's price.
- ``read-append-1``: the read-decide-append cycle with one client: read the events of an
  entity's tag (one of 1,000), then append one event carrying that tag (and every other
  time a second one) under the condition that nothing matching the tag came after the
  position the read returned. ``cond-append-1`` is the same run timed over its appends only.
  facta's four one-client rows are measured side by side on one store, one of each per
  round, so that a change in the machine's load falls on all four alike.
- ``read-append-16``: that cycle from 16 concurrent clients on disjoint tags: 16 asyncio
  tasks on one facta engine (each gives way to the others between cycles, as a request
  handler does: a memory engine never suspends); for `eventsourcing` (synchronous) 16
  threads, each with a recorder of its own (on PostgreSQL a connection pool of one
  connection each, its datastore's pool being what makes a recorder usable from threads;
  the popo recorder keeps its events in the instance, so its threads share one, which
  serialises on its lock).
- ``hot-tag-16``: 16 clients on ONE tag, in rounds: all 16 read what is new on the tag
  since the previous round's read (as clients holding their decision's state do, so that a
  round costs the same however long the run) and get the same position, then all race one
  conditional append (eventsourcing's threads meet at a barrier between read and append);
  every round must commit exactly one. A round that does not finish within 30 s counts as a
  timeout and ends the workload.
- ``read-tag-10k``: reading every event of a tag that 10,000 events carry, written among
  10,000 others (facta: ``read(query)``; eventsourcing: ``recorder.read(query)``, both
  undecoded), repeated while time remains.

SQLite has no `eventsourcing` DCB recorder: facta's rows stand alone there. Prints the raw
rows and the ratios (facta ÷ eventsourcing; facta's conditional ÷ plain appends) and writes
them as JSON (``dcb-raw-<date>.json`` in ``--out``); a complete full run is also kept in
benchmarks/dcb-results.json and benchmarks/DCB-RESULTS.md.
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
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facta import NewEvent, open_store
from facta.errors import AppendConditionFailed
from facta.store import Boundaries, Engine, Query

# Run as a script, this folder comes first on sys.path: the repository root is needed too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import chosen, exit_if_failed, run_facts, save, version

HERE = Path(__file__).resolve().parent

PG_DSN = os.environ.get("FACTA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
STORES = ("memory", "sqlite", "postgres")
LIBRARIES = ("facta", "eventsourcing")
ES_MODULES = {"memory": "eventsourcing.dcb.popo", "postgres": "eventsourcing.dcb.postgres_tt"}
DATA = b'{"amount":"1.00"}'
TYPE = "Deposited"
ROUND_TIMEOUT = 30.0

# Targets from issue 21: facta ÷ eventsourcing, and facta's conditional ÷ plain appends.
TARGETS = {"read-append-16": 5.0}
CONDITIONAL_SHARE_TARGET = 0.8


@dataclass(frozen=True)
class Settings:
    seconds: float = 3.0  # the time each workload runs for (after its warm-up)
    max_ops: int = 10_000_000  # and at most this many appends (rounds for hot-tag-16)
    tags: int = 1_000  # entity tags of the one-client cycle (split among the 16 clients)
    clients: int = 16
    tagged: int = 10_000  # events carrying the tag read-tag-10k reads
    others: int = 10_000  # the events among them that do not
    reads: int = 5  # read-tag-10k: at most this many reads
    warmup: int = 20

    @classmethod
    def named(cls, quick: bool, seconds: float) -> Settings:
        if quick:  # a smoke test of the script, not a measurement
            return cls(seconds=0.5, max_ops=32, tags=32, tagged=100, others=100, reads=2, warmup=2)
        return cls(seconds=seconds)


@dataclass
class Row:
    value: float
    unit: str
    n: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def _second_tag(i: int, client: int) -> tuple[str, ...]:
    """Every other event carries a second tag besides its entity's (1-2 tags)."""
    return (f"client-{client}",) if i % 2 else ()


# -- facta -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def facta_engine(store: str, scratch: Path) -> AsyncIterator[Engine]:
    """A fresh engine: memory, a new SQLite file, or a new PostgreSQL schema (dropped after)."""
    schema = f"bench_dcb_{uuid.uuid4().hex[:12]}"
    url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{scratch / f'facta-{schema}.db'}",
        "postgres": f"{PG_DSN}?schema={schema}",
    }[store]
    engine = await open_store(url)
    try:
        yield engine
    finally:
        await engine.close()
        if store == "postgres":
            await _drop_schema(schema)


async def _drop_schema(schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_DSN)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


def _facta_event(tag: str, i: int, client: int = 0) -> NewEvent:
    return NewEvent(TYPE, DATA, tags=(tag, *_second_tag(i, client)))


async def facta_one_client(engine: Engine, s: Settings) -> dict[str, Row]:
    """One client's plain-append-1, tagged-append-1, read-append-1 and cond-append-1 rows,
    measured side by side: each round does one of each, in turn, on the same store, so that
    a change in the machine's load (other processes, PostgreSQL's checkpoints) falls on all
    four alike instead of on whichever ran in its window. cond-append-1 is read-append-1's
    run timed over its appends only."""
    dcb = engine.require(Boundaries)
    tags = [f"acct-{t}" for t in range(s.tags)]
    queries = [Query.of(tags=(tag,)) for tag in tags]
    others = [f"other-{t}" for t in range(s.tags)]  # tagged-append-1's: not read by the cycle
    streams = [f"plain-{t}" for t in range(s.tags)]
    for i in range(s.warmup):
        await engine.append(f"warm-{i}", [NewEvent(TYPE, DATA)])
        query = Query.of(tags=(f"warm-{i}",))
        page = await dcb.read(query)
        await dcb.append([_facta_event(f"warm-{i}", i)], page.condition(query))
    gc.collect()
    n, reads = 0, []
    plain = tagged = appending = cycling = 0.0
    deadline = time.perf_counter() + 3 * s.seconds  # the three workloads' time together
    while n < s.max_ops and time.perf_counter() < deadline:
        k = n % s.tags
        event = NewEvent(TYPE, DATA)
        before = time.perf_counter()
        await engine.append(streams[k], [event])
        plain += time.perf_counter() - before

        event = _facta_event(others[k], n)
        before = time.perf_counter()
        await dcb.append([event])
        tagged += time.perf_counter() - before

        event = _facta_event(tags[k], n)
        before = time.perf_counter()
        page = await dcb.read(queries[k])
        read = time.perf_counter()
        await dcb.append([event], page.condition(queries[k]))
        done = time.perf_counter()
        appending += done - read
        cycling += done - before
        reads.append(read - before)
        n += 1
    cycle, conditional = _one_client_rows(n, cycling, reads, appending)
    return {
        "plain-append-1": Row(n / plain, "appends/s", n, plain),
        "tagged-append-1": Row(n / tagged, "appends/s", n, tagged),
        "read-append-1": cycle,
        "cond-append-1": conditional,
    }


async def facta_disjoint(engine: Engine, s: Settings) -> Row:
    dcb = engine.require(Boundaries)
    per_client = max(1, s.tags // s.clients)
    counts = [0] * s.clients
    waits = [0.0, 0.0]  # seconds in reads, in appends (summed over the clients)
    deadline = 0.0

    async def client(c: int, warm: bool) -> None:
        tags = [f"c{c}-acct-{t}" for t in range(per_client)]
        queries = [Query.of(tags=(tag,)) for tag in tags]
        n = 0
        limit = 1 if warm else s.max_ops // s.clients
        while n < limit and (warm or time.perf_counter() < deadline):
            query = queries[n % per_client]
            event = _facta_event(tags[n % per_client], n, c)
            before = time.perf_counter()
            page = await dcb.read(query)
            read = time.perf_counter()
            await dcb.append([event], page.condition(query))
            waits[0] += read - before
            waits[1] += time.perf_counter() - read
            n += 1
            # A memory engine never suspends: without this one client would run alone
            # until the deadline (a request handler gives way between requests too).
            await asyncio.sleep(0)
        if not warm:
            counts[c] = n

    await asyncio.gather(*(client(c, warm=True) for c in range(s.clients)))
    waits[:] = [0.0, 0.0]
    gc.collect()
    started = time.perf_counter()
    deadline = started + s.seconds
    await asyncio.gather(*(client(c, warm=False) for c in range(s.clients)))
    seconds = time.perf_counter() - started
    return _disjoint_row(counts, seconds, waits)


async def facta_hot_tag(engine: Engine, s: Settings) -> Row:
    dcb = engine.require(Boundaries)
    hot = Rounds()

    async def attempt(page: Any, query: Query, tag: str, c: int, i: int) -> str:
        try:
            await dcb.append([_facta_event(tag, i, c)], page.condition(query))
        except AppendConditionFailed:
            return "failed"
        return "committed"

    seen: dict[str, Any] = {}  # per tag: the position the previous round's reads returned

    async def round_(tag: str, i: int) -> tuple[bool, list[str]]:
        query = Query.of(tags=(tag,))
        reads = (dcb.read(query, after=seen.get(tag)) for _ in range(s.clients))
        pages = await asyncio.gather(*reads)
        seen[tag] = pages[0].after
        same = len({page.after for page in pages}) == 1
        outcomes = await asyncio.gather(
            *(attempt(page, query, tag, c, i) for c, page in enumerate(pages)),
            return_exceptions=True,
        )
        return same, [o if isinstance(o, str) else f"error: {o!r}" for o in outcomes]

    for i in range(s.warmup // 4 or 1):
        await round_("warm-hot", i)
    gc.collect()
    started = time.perf_counter()
    deadline = started + s.seconds
    while hot.rounds < s.max_ops and time.perf_counter() < deadline:
        try:
            async with asyncio.timeout(ROUND_TIMEOUT):
                same, outcomes = await round_("hot", hot.rounds)
        except TimeoutError:
            hot.timeouts += 1
            break
        hot.record(same, outcomes)
    return hot.row(time.perf_counter() - started)


async def facta_fill(engine: Engine, s: Settings) -> None:
    """``s.tagged`` events tagged ``big`` among ``s.others`` others, in batches of 100."""
    dcb = engine.require(Boundaries)
    for batch in _interleaved(s):
        await dcb.append([NewEvent(TYPE, DATA, tags=tags) for tags in batch])


async def facta_read_tag(engine: Engine, s: Settings) -> Row:
    await facta_fill(engine, s)
    dcb = engine.require(Boundaries)
    query = Query.of(tags=("big",))
    await dcb.read(query)  # warm-up
    gc.collect()
    n, reads = 0, 0
    started = time.perf_counter()
    deadline = started + s.seconds
    while reads < s.reads and (reads == 0 or time.perf_counter() < deadline):
        page = await dcb.read(query)
        assert len(page.events) == s.tagged, len(page.events)
        n += len(page.events)
        reads += 1
    seconds = time.perf_counter() - started
    return Row(n / seconds, "events/s", n, seconds, {"reads": reads})


async def run_facta(store: str, s: Settings, scratch: Path, emit: Callable[..., None]) -> None:
    async def one(workload: str, measure: Callable[[Engine], Any]) -> None:
        try:
            async with facta_engine(store, scratch) as engine:
                rows = await measure(engine)
        except Exception as exc:  # one failing workload does not end the run
            emit(store, "facta", workload, error=f"{type(exc).__name__}: {exc}")
            return
        if isinstance(rows, Row):
            emit(store, "facta", workload, rows)
        else:
            for name, row in rows.items():
                emit(store, "facta", name, row)

    await one("one-client", lambda e: facta_one_client(e, s))
    await one("read-append-16", lambda e: facta_disjoint(e, s))
    await one("hot-tag-16", lambda e: facta_hot_tag(e, s))
    await one("read-tag-10k", lambda e: facta_read_tag(e, s))


# -- eventsourcing -----------------------------------------------------------------------


@contextlib.contextmanager
def es_recorders(store: str, count: int) -> Iterator[list[Any]]:
    """``count`` DCB recorders on a fresh store, made the way a DCBApplication makes its one
    (``DCBInfrastructureFactory.construct(env).dcb_recorder()``). PostgreSQL: each has its
    own datastore with a pool of one connection, in a new schema (dropped after). Memory:
    one popo recorder, shared (its events live in the instance)."""
    from eventsourcing.dcb.persistence import DCBInfrastructureFactory
    from eventsourcing.utils import Environment

    schema = f"bench_dcb_{uuid.uuid4().hex[:12]}"
    env = {"PERSISTENCE_MODULE": ES_MODULES[store]}
    if store == "postgres":
        asyncio.run(_create_schema(schema))
        env |= {
            "POSTGRES_DBNAME": "test",
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": "5432",
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": "postgres",
            "POSTGRES_SCHEMA": schema,
            "POSTGRES_POOL_SIZE": "1",
            "POSTGRES_MAX_OVERFLOW": "0",
        }
    factories: list[Any] = []
    # 9.5.6's tags table refers to the events table without its schema (``REFERENCES
    # {events_table}``): created outside ``public`` it needs the schema on the search path.
    options = os.environ.get("PGOPTIONS")
    if store == "postgres":
        os.environ["PGOPTIONS"] = f"-c search_path={schema}"
    try:
        for _ in range(count if store == "postgres" else 1):  # one at a time: the first
            environment = Environment("DCBBench", env)  # creates the tables
            factories.append(DCBInfrastructureFactory.construct(environment))
        recorders = [factory.dcb_recorder() for factory in factories]
        yield recorders * (count // len(recorders))
    finally:
        for factory in factories:
            factory.close()
        if store == "postgres":
            if options is None:
                os.environ.pop("PGOPTIONS", None)
            else:
                os.environ["PGOPTIONS"] = options
            asyncio.run(_drop_schema(schema))


async def _create_schema(schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_DSN)
    try:
        await connection.execute(f"CREATE SCHEMA {schema}")
    finally:
        await connection.close()


def _es_event(tag: str, i: int, client: int = 0) -> Any:
    from eventsourcing.dcb.api import DCBEvent

    return DCBEvent(TYPE, DATA, [tag, *_second_tag(i, client)])


def _es_query(tag: str) -> Any:
    from eventsourcing.dcb.api import DCBQuery, DCBQueryItem

    return DCBQuery([DCBQueryItem(tags=[tag])])


def _es_cycle(recorder: Any, query: Any, event: Any) -> tuple[float, float]:
    """Read ``query``'s events and append ``event`` after them: the seconds the read took,
    and the append."""
    from eventsourcing.dcb.api import DCBAppendCondition

    before = time.perf_counter()
    response = recorder.read(query)
    list(response)  # the events a decision would fold
    read = time.perf_counter()
    recorder.append([event], DCBAppendCondition(query, response.head))
    return read - before, time.perf_counter() - read


def es_one_client(recorders: list[Any], s: Settings) -> tuple[Row, Row]:
    (recorder,) = recorders
    tags = [f"acct-{t}" for t in range(s.tags)]
    queries = [_es_query(tag) for tag in tags]
    for i in range(s.warmup):
        _es_cycle(recorder, _es_query(f"warm-{i}"), _es_event(f"warm-{i}", i))
    gc.collect()
    n, reads, appending = 0, [], 0.0
    started = time.perf_counter()
    deadline = started + s.seconds
    while n < s.max_ops and time.perf_counter() < deadline:
        event = _es_event(tags[n % s.tags], n)
        read, append = _es_cycle(recorder, queries[n % s.tags], event)
        reads.append(read)
        appending += append
        n += 1
    seconds = time.perf_counter() - started
    return _one_client_rows(n, seconds, reads, appending)


def es_disjoint(recorders: list[Any], s: Settings) -> Row:
    per_client = max(1, s.tags // s.clients)
    counts = [0] * s.clients
    took = [(0.0, 0.0)] * s.clients  # per client: seconds in reads, in appends
    start = threading.Barrier(s.clients + 1)
    deadline = [0.0]

    def client(c: int) -> None:
        recorder = recorders[c]
        tags = [f"c{c}-acct-{t}" for t in range(per_client)]
        queries = [_es_query(tag) for tag in tags]
        _es_cycle(recorder, _es_query(f"warm-{c}"), _es_event(f"warm-{c}", 0, c))
        start.wait()  # the clock starts when every client is warm
        start.wait()
        n, reading, appending = 0, 0.0, 0.0
        while n < s.max_ops // s.clients and time.perf_counter() < deadline[0]:
            event = _es_event(tags[n % per_client], n, c)
            read, append = _es_cycle(recorder, queries[n % per_client], event)
            reading, appending = reading + read, appending + append
            n += 1
        counts[c], took[c] = n, (reading, appending)

    with ThreadPoolExecutor(s.clients) as pool:
        futures = [pool.submit(client, c) for c in range(s.clients)]
        start.wait()
        gc.collect()
        started = time.perf_counter()
        deadline[0] = started + s.seconds
        start.wait()
        for future in futures:
            future.result()
        seconds = time.perf_counter() - started
    waits = [sum(t[0] for t in took), sum(t[1] for t in took)]
    return _disjoint_row(counts, seconds, waits)


def es_hot_tag(recorders: list[Any], s: Settings) -> Row:
    from eventsourcing.dcb.api import DCBAppendCondition
    from eventsourcing.persistence import IntegrityError

    hot = Rounds()
    raced = threading.Barrier(s.clients)
    seen: dict[str, Any] = {}  # per tag: the position the previous round's reads returned

    def attempt(c: int, tag: str, i: int) -> tuple[Any, str]:
        recorder, query = recorders[c], _es_query(tag)
        response = recorder.read(query, after=seen.get(tag))
        list(response)
        raced.wait(ROUND_TIMEOUT)  # everyone has read before anyone appends
        try:
            recorder.append([_es_event(tag, i, c)], DCBAppendCondition(query, response.head))
        except IntegrityError:
            return response.head, "failed"
        except Exception as exc:
            return response.head, f"error: {exc!r}"
        return response.head, "committed"

    def round_(pool: ThreadPoolExecutor, tag: str, i: int) -> tuple[bool, list[str]]:
        futures = [pool.submit(attempt, c, tag, i) for c in range(s.clients)]
        results = [future.result(timeout=2 * ROUND_TIMEOUT) for future in futures]
        seen[tag] = results[0][0]
        return len({head for head, _ in results}) == 1, [outcome for _, outcome in results]

    with ThreadPoolExecutor(s.clients) as pool:
        for i in range(s.warmup // 4 or 1):
            round_(pool, "warm-hot", i)
        gc.collect()
        started = time.perf_counter()
        deadline = started + s.seconds
        while hot.rounds < s.max_ops and time.perf_counter() < deadline:
            try:
                same, outcomes = round_(pool, "hot", hot.rounds)
            except (TimeoutError, threading.BrokenBarrierError):
                hot.timeouts += 1
                raced.abort()
                break
            hot.record(same, outcomes)
        seconds = time.perf_counter() - started
    return hot.row(seconds)


def es_read_tag(recorders: list[Any], s: Settings) -> Row:
    from eventsourcing.dcb.api import DCBEvent

    (recorder,) = recorders
    for batch in _interleaved(s):
        recorder.append([DCBEvent(TYPE, DATA, list(tags)) for tags in batch])
    query = _es_query("big")
    list(recorder.read(query))  # warm-up
    gc.collect()
    n, reads = 0, 0
    started = time.perf_counter()
    deadline = started + s.seconds
    while reads < s.reads and (reads == 0 or time.perf_counter() < deadline):
        events = list(recorder.read(query))
        assert len(events) == s.tagged, len(events)
        n += len(events)
        reads += 1
    seconds = time.perf_counter() - started
    return Row(n / seconds, "events/s", n, seconds, {"reads": reads})


def run_es(store: str, s: Settings, emit: Callable[..., None]) -> None:
    def one(workload: str, clients: int, measure: Callable[[list[Any]], Any]) -> None:
        try:
            with es_recorders(store, clients) as recorders:
                rows = measure(recorders)
        except Exception as exc:
            emit(store, "eventsourcing", workload, error=f"{type(exc).__name__}: {exc}")
            return
        if isinstance(rows, Row):
            emit(store, "eventsourcing", workload, rows)
        else:
            emit(store, "eventsourcing", workload, rows[0])
            emit(store, "eventsourcing", "cond-append-1", rows[1])

    one("read-append-1", 1, lambda r: es_one_client(r, s))
    one("read-append-16", s.clients, lambda r: es_disjoint(r, s))
    one("hot-tag-16", s.clients, lambda r: es_hot_tag(r, s))
    one("read-tag-10k", 1, lambda r: es_read_tag(r, s))


# -- shared ------------------------------------------------------------------------------


def _one_client_rows(
    n: int, seconds: float, reads: list[float], appending: float
) -> tuple[Row, Row]:
    """read-append-1's row (with its reads' median and longest: a read that waits shows
    there) and cond-append-1's, the same run timed over its appends."""
    extra = {
        "read_ms_median": round(1000 * statistics.median(reads), 2) if reads else None,
        "read_ms_max": round(1000 * max(reads, default=0.0), 2),
    }
    return (
        Row(n / seconds, "cycles/s", n, seconds, extra),
        Row(n / appending, "appends/s", n, appending),
    )


def _disjoint_row(counts: list[int], seconds: float, waits: list[float]) -> Row:
    """read-append-16's row, with how evenly the clients were served and how long a read and
    an append took on average (``waits``: their seconds summed over the clients)."""
    done = max(sum(counts), 1)
    extra = {
        "per_client_min": min(counts),
        "per_client_max": max(counts),
        "read_ms": round(1000 * waits[0] / done, 2),
        "append_ms": round(1000 * waits[1] / done, 2),
    }
    return Row(sum(counts) / seconds, "cycles/s", sum(counts), seconds, extra)


def _interleaved(s: Settings) -> Iterator[list[tuple[str, ...]]]:
    """The tags of the read-tag-10k log, in batches of 100: ``big`` events spread evenly
    among events of 100 other tags."""
    total = s.tagged + s.others
    every = total / s.tagged
    tags = [
        ("big", f"other-{i % 100}") if int(i % every) == 0 else (f"other-{i % 100}",)
        for i in range(total)
    ]
    assert sum("big" in t for t in tags) == s.tagged
    for start in range(0, total, 100):
        yield tags[start : start + 100]


@dataclass
class Rounds:
    """What the hot-tag rounds saw."""

    rounds: int = 0
    commits: list[int] = field(default_factory=list)
    positions_differed: int = 0
    timeouts: int = 0
    errors: list[str] = field(default_factory=list)

    def record(self, same: bool, outcomes: Sequence[str]) -> None:
        self.rounds += 1
        self.commits.append(outcomes.count("committed"))
        self.positions_differed += not same
        self.errors += [o for o in outcomes if o.startswith("error")]

    def row(self, seconds: float) -> Row:
        extra = {
            "commits_per_round_min": min(self.commits, default=0),
            "commits_per_round_max": max(self.commits, default=0),
            "rounds_not_exactly_one": sum(c != 1 for c in self.commits),
            "rounds_reads_differed": self.positions_differed,
            "timeouts": self.timeouts,
            "errors": len(self.errors),
            "first_error": self.errors[0] if self.errors else None,
        }
        return Row(self.rounds / seconds, "rounds/s", self.rounds, seconds, extra)


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """facta ÷ eventsourcing per (store, workload), and facta's conditional ÷ plain appends."""
    found = {(r["store"], r["library"], r["workload"]): r for r in rows if "error" not in r}
    out: list[dict[str, Any]] = []
    for (store, library, workload), row in found.items():
        if library != "facta":
            continue
        es = found.get((store, "eventsourcing", workload))
        if es is not None:
            out.append(
                {
                    "store": store,
                    "ratio": f"{workload}: facta / eventsourcing",
                    "value": row["value"] / es["value"],
                    "target": TARGETS.get(workload),
                }
            )
    for store in STORES:
        plain = found.get((store, "facta", "plain-append-1"))
        for workload in ("cond-append-1", "read-append-1"):
            conditional = found.get((store, "facta", workload))
            if plain and conditional:
                out.append(
                    {
                        "store": store,
                        "ratio": f"facta {workload} / plain-append-1",
                        "value": conditional["value"] / plain["value"],
                        "target": CONDITIONAL_SHARE_TARGET if workload == "cond-append-1" else None,
                    }
                )
        tagged = found.get((store, "facta", "tagged-append-1"))
        conditional = found.get((store, "facta", "cond-append-1"))
        if tagged and conditional:
            out.append(
                {
                    "store": store,
                    "ratio": "facta cond-append-1 / tagged-append-1 (the condition's price)",
                    "value": conditional["value"] / tagged["value"],
                    "target": None,
                }
            )
        hot = found.get((store, "facta", "hot-tag-16"))
        if hot:
            out.append(hot_check(store, "facta", hot))
        es_hot = found.get((store, "eventsourcing", "hot-tag-16"))
        if es_hot:
            out.append(hot_check(store, "eventsourcing", es_hot))
    return sorted(out, key=lambda check: STORES.index(check["store"]))


def hot_check(store: str, library: str, row: dict[str, Any]) -> dict[str, Any]:
    extra = row["extra"]
    exact = not (extra["rounds_not_exactly_one"] or extra["timeouts"] or extra["errors"])
    return {
        "store": store,
        "ratio": f"{library} hot-tag-16: rounds with exactly one commit",
        "value": (row["n"] - extra["rounds_not_exactly_one"]) / max(row["n"], 1),
        "target": 1.0,
        "met": exact and row["n"] > 0,
        "share": True,
    }


def render(meta: dict[str, Any], rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    lines = [
        "# Dynamic consistency boundaries: benchmark results",
        "",
        f"{meta['date']} · {meta['machine']} · {meta['cores']} cores (load average"
        f" {meta['load_average'][0]} before, {meta['load_average'][1]} after) · eventsourcing"
        f" {meta['eventsourcing']} · {meta['seconds']} s per workload"
        f"{' · QUICK (not a measurement)' if meta['quick'] else ''}",
        "",
        "| store | library | workload | value | unit | n | seconds | notes |",
        "|---|---|---|---:|---|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['store']} | {r['library']} | {r['workload']} | - | | | |"
                         f" {r['error'][:160]} |")  # fmt: skip
            continue
        notes = ", ".join(f"{k} {v}" for k, v in r["extra"].items() if v not in (None, 0))
        if r["workload"] == "hot-tag-16":
            e = r["extra"]
            notes = (
                f"commits/round {e['commits_per_round_min']}-{e['commits_per_round_max']},"
                f" rounds not 1: {e['rounds_not_exactly_one']}, timeouts {e['timeouts']},"
                f" errors {e['errors']}" + (f" ({e['first_error']})" if e["first_error"] else "")
            )
        lines.append(
            f"| {r['store']} | {r['library']} | {r['workload']} | {r['value']:,.1f} | {r['unit']}"
            f" | {r['n']:,} | {r['seconds']:.2f} | {notes} |"
        )
    lines += ["", "| store | ratio | value | target |", "|---|---|---:|---:|"]
    for c in checks:
        target = c["target"]
        met = c.get("met", target is None or c["value"] >= target)
        mark = "" if target is None else (" ✅" if met else " ❌")
        share = c.get("share", False)
        shown = f"{100 * c['value']:.1f} %" if share else f"{c['value']:.2f}x"
        wanted = "" if target is None else ("100 %" if share else f">= {target}x")
        lines.append(f"| {c['store']} | {c['ratio']} | {shown}{mark} | {wanted} |")
    return "\n".join([*lines, ""])


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark as the command line ``argv`` says; the raw rows and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--seconds", type=float, default=3.0, help="per workload")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke test")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    stores = chosen("--stores", args.stores, STORES)
    libraries = chosen("--libraries", args.libraries, LIBRARIES)
    settings = Settings.named(args.quick, args.seconds)
    rows: list[dict[str, Any]] = []

    def emit(store: str, library: str, workload: str, row: Row | None = None, **error: str) -> None:
        base = {"store": store, "library": library, "workload": workload}
        if row is None:
            rows.append({**base, **error})
            print(f"{store:9} {library:14} {workload:16} ERROR {error['error']}", flush=True)
            return
        rows.append({**base, "value": row.value, "unit": row.unit, "n": row.n,
                     "seconds": row.seconds, "extra": row.extra})  # fmt: skip
        print(
            f"{store:9} {library:14} {workload:16} {row.value:>14,.1f} {row.unit:10}"
            f" n={row.n:<8,} {row.seconds:6.2f} s {row.extra or ''}",
            flush=True,
        )

    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    with tempfile.TemporaryDirectory(prefix="facta-dcb-bench-") as scratch:
        for store in stores:
            if "facta" in libraries:
                asyncio.run(run_facta(store, settings, Path(scratch), emit))
            if "eventsourcing" in libraries and store in ES_MODULES:
                run_es(store, settings, emit)

    meta = run_facts(
        load_before,
        eventsourcing=version("eventsourcing"),
        seconds=settings.seconds,
        quick=args.quick,
        stores=stores,
        libraries=libraries,
    )
    checks = ratios(rows)
    result = {"meta": meta, "rows": rows, "ratios": checks}
    complete = stores == list(STORES) and libraries == list(LIBRARIES)
    keep = complete and not args.quick and not any("error" in r for r in rows)
    save("dcb", result, render(meta, rows, checks), out=args.out, keep=keep)
    return result


def main() -> None:
    exit_if_failed(run())


if __name__ == "__main__":
    main()
