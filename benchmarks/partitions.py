"""Partitioned projections: how the catch-up rate of one projection grows with the worker
processes that share its partitions, on PostgreSQL, in one run of about three minutes.

    python benchmarks/partitions.py [--workloads io,io-unpartitioned,cpu] [--rounds 2]
                                    [--quick] [--out benchmarks/results]

Each configuration runs on a new PostgreSQL schema (dropped afterwards), with a log of
``events`` events over 1,000 streams (the same number each), and N worker processes
(benchmarks/partition_worker.py, each a ProjectionRunner with ``lease_ttl`` 3 s and batches of
1,000 events) started at once. The workloads (projections in benchmarks/partition_worker.py):

- ``io``: 8 partitions; per event an awaited ``asyncio.sleep(0.001)`` (a call to another
  service), then the stream's document is read and written; 1, 2, 4 and 8 workers.
- ``io-unpartitioned``: the same handler in one partition, one worker (for context).
- ``cpu``: 8 partitions; per event PBKDF2-SHA256 work of about 0.3 ms (no awaits), then the
  stream's document; 1 and 2 workers (this machine has 2 cores, PostgreSQL included).

What is timed. Start-up (spawning the processes, imports, first claims, the fleet sharing
the partitions out: heartbeats every ``lease_ttl / 3``, hand-overs at renew points) is
excluded: the log is filled while a transaction of this process holds an id open, and on
PostgreSQL no reader sees an event committed after an open transaction's id (the store's
gap-safe visibility rule), so the workers start, claim and settle on an empty-looking log.
Once every partition is held by its final owner (each worker its share, 8 / N), the clock
starts and the transaction ends: every event becomes visible at once, and the stream's last
event, appended then, wakes the workers by notification. The clock stops when this process,
polling the catalog every 20 ms, sees every partition's checkpoint at the head. The row's
``startup_s`` is the time from spawning the workers to that final layout (not in the rate).
That transaction holds back every reader of the whole PostgreSQL cluster for the fill and
the start-up (seconds): run the benchmark alone.

Per row: the rate (events/s); over the timed window, the CPU seconds of the workers, of the
PostgreSQL server and of everything else on the machine but this process (from /proc: load
that is not this benchmark's skews the row); the most connections to the database seen at
once; the most events seen held back by other transactions in the cluster (a row with some
waited for them); and a check of the documents (every stream's count of events exact, or the
row fails: nothing lost or doubled). Every configuration runs once per round (``--rounds``,
the order reversed every other round); the checks take each configuration's median rate:
the ``io`` rate with N workers against the target of issue 22 (at least 0.8 x N x the
one-worker rate) and against the ceiling of 8 partitions each handling one event at a time,
each in the measured time of ``asyncio.sleep(0.001)``.
Writes the raw result as JSON (``partitions-raw-<date>.json`` in ``--out``); a complete full
run is also kept in benchmarks/partitions-results.json and benchmarks/PARTITIONS-RESULTS.md.

`eventsourcing` (9.5.6) has no partitioned projections (one tracking position per
projection, one runner): there is nothing of it to run beside these.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from facta import Codec, Position, open_store
from facta.projections import ReadStore
from facta.store import Engine, HeldBack
from facta.store.read_models import partition_of

# Run as a script, this folder comes first on sys.path: the repository root is needed too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import chosen, exit_if_failed, run_facts, save
from benchmarks.partition_worker import CPU_ROUNDS, IO_WAIT, WORKLOADS, Touched, work

HERE = Path(__file__).resolve().parent
WORKER = HERE / "partition_worker.py"
PG_DSN = os.environ.get("FACTA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TARGET = 0.8  # issue 22: the rate with N workers, at least TARGET x N x the one-worker rate
LEASE_TTL = 3.0
BATCH_SIZE = 1000
STREAMS = 1000
POLL = 0.02  # seconds between looks at the checkpoints
SETTLE_TIMEOUT = 60.0
CATCH_UP_TIMEOUT = 240.0
ATTEMPTS = 2  # a configuration that other work disturbed is measured once more
DISTURBING = 0.15  # other work's share of the machine's CPU that disturbs a row
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Config:
    workload: str
    workers: int
    events: int  # a multiple of BATCH_SIZE: see fill

    @property
    def partitions(self) -> int:
        return WORKLOADS[self.workload].partitions


FULL = (
    Config("io", 1, 40_000),
    Config("io", 2, 40_000),
    Config("io", 4, 40_000),
    Config("io", 8, 40_000),
    Config("io-unpartitioned", 1, 5_000),
    Config("cpu", 1, 20_000),
    Config("cpu", 2, 20_000),
)


def configs(workloads: Sequence[str], quick: bool) -> list[Config]:
    chosen_ = [c for c in FULL if c.workload in workloads]
    if quick:  # a smoke test of the script, not a measurement
        return [Config(c.workload, c.workers, 2_000) for c in chosen_]
    return chosen_


# -- the log -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_store() -> AsyncIterator[tuple[Engine, str]]:
    """A store on a new PostgreSQL schema, dropped afterwards; (engine, url)."""
    schema = f"bench_part_{uuid.uuid4().hex[:12]}"
    url = f"{PG_DSN}?schema={schema}"
    engine = await open_store(url)
    try:
        yield engine, url
    finally:
        await engine.close()
        connection = await asyncpg.connect(PG_DSN)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await connection.close()


@contextlib.asynccontextmanager
async def log_hidden() -> AsyncIterator[None]:
    """A transaction holding an id open: no reader sees events committed meanwhile until it
    ends (PostgreSQL's store delivers only events below every running transaction's id)."""
    connection = await asyncpg.connect(PG_DSN)
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.fetchval("SELECT pg_current_xact_id()")
        try:
            yield
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


def stream(s: int) -> str:
    return f"stream-{s}"


def largest_partition(partitions: int) -> float:
    """The share of the streams (so of the events) in the largest of ``partitions``: the one
    that finishes last."""
    counts = Counter(partition_of(stream(s), partitions) for s in range(STREAMS))
    return max(counts.values()) / STREAMS


async def fill(engine: Engine, codec: Codec, events: int) -> None:
    """Append ``events`` events over STREAMS streams but the last one (the first stream's
    last): appended after the log is released, it wakes the workers. With ``events`` a
    multiple of BATCH_SIZE, the last page each worker reads holds events of every partition
    (a page of none of a partition's events would hold its checkpoint back 0.2 s)."""
    per_stream = events // STREAMS
    pending = []
    for s in range(STREAMS):
        count = per_stream - 1 if s == 0 else per_stream
        batch = [codec.encode(Touched(n)) for n in range(count)]
        pending.append(engine.append(stream(s), batch, 0))
        if len(pending) == 50:  # concurrent appends share transactions (group commit)
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def last_event(engine: Engine, codec: Codec, events: int) -> Position:
    """Append the log's last event; its position (the head the workers must reach: the
    store's ``head()`` would answer what is visible, less while another transaction in the
    cluster holds events back)."""
    per_stream = events // STREAMS
    event = codec.encode(Touched(per_stream - 1))
    return (await engine.append(stream(0), [event], per_stream - 1)).position


# -- the workers ---------------------------------------------------------------------------


def spawn(url: str, config: Config, run_id: str) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                url,
                config.workload,
                f"{run_id}-w{i}",
                str(LEASE_TTL),
                str(BATCH_SIZE),
            ],
            cwd=HERE.parent,
        )
        for i in range(config.workers)
    ]


def stop(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def cpu_of(stat: str) -> float:
    """User and system CPU seconds in a /proc/PID/stat line."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far."""
    return cpu_of(Path(f"/proc/{pid}/stat").read_text())


def postgres_seconds() -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL server process on this machine."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            if "(postgres)" in text:
                found[int(stat.parent.name)] = cpu_of(text)
    return found


def machine_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, every core."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


async def layout(engine: Engine, name: str) -> Counter[str | None]:
    """How many of ``name``'s active partitions each owner holds."""
    return Counter(r.owner for r in await engine.read_models.slots(name) if r.active)


async def settle(engine: Engine, config: Config, owners: list[str]) -> dict[str, int]:
    """Wait until every partition is held by its final owner: each worker its share."""
    name = WORKLOADS[config.workload].name
    share = config.partitions // config.workers
    wanted = Counter({owner: share for owner in owners})
    deadline = time.monotonic() + SETTLE_TIMEOUT
    seen: Counter[str | None] = Counter()
    while time.monotonic() < deadline:
        seen = await layout(engine, name)
        if seen == wanted:
            return {str(k): v for k, v in seen.items()}
        await asyncio.sleep(POLL)
    raise TimeoutError(f"the partitions did not settle in {SETTLE_TIMEOUT} s: {dict(seen)}")


async def caught_up(engine: Engine, name: str, partitions: int, head: Position) -> float:
    """Wait until every partition's checkpoint is at ``head``; how long (seconds, looked at
    every 0.1 s) other transactions in the cluster held events back from the workers
    meanwhile (a foreign transaction holding an id: the workers waited for it)."""
    counter = engine.capability(HeldBack)
    assert counter is not None  # PostgreSQL
    held = 0.0
    looked = time.monotonic()
    deadline = looked + CATCH_UP_TIMEOUT
    while time.monotonic() < deadline:
        rows = [r for r in await engine.read_models.slots(name) if r.active]
        if len(rows) == partitions and all(r.position >= head for r in rows):
            return held
        if time.monotonic() - looked >= 0.1:
            if await counter.held_back():
                held += time.monotonic() - looked
            looked = time.monotonic()
        await asyncio.sleep(POLL)
    raise TimeoutError(f"not caught up in {CATCH_UP_TIMEOUT} s")


def disturbed(row: dict[str, Any]) -> str:
    """Why other work on the machine or in the cluster skewed ``row`` ("" if it did not):
    events held back by others for 0.2 s or more, or more than DISTURBING of the machine's
    CPU over the window."""
    reasons = []
    if row["held_back_s"] >= 0.2:
        reasons.append(f"events held back by others for {row['held_back_s']:.1f} s")
    if row["other_cpu_s"] > DISTURBING * row["machine_s"]:
        reasons.append(f"{row['other_cpu_s']:.1f} CPU s of other work")
    return ", ".join(reasons)


@contextlib.asynccontextmanager
async def connections() -> AsyncIterator[list[int]]:
    """The most connections to the database seen at once (every client's), sampled every
    0.1 s while inside: ``[peak]``."""
    peak = [0]
    connection = await asyncpg.connect(PG_DSN)

    async def sample() -> None:
        while True:
            count = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            peak[0] = max(peak[0], count)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        await connection.close()


async def measure(config: Config) -> dict[str, Any]:
    """One configuration's row."""
    projection = WORKLOADS[config.workload]
    codec = Codec()
    codec.register(Touched)
    run_id = uuid.uuid4().hex[:6]
    owners = [f"{run_id}-w{i}" for i in range(config.workers)]
    async with fresh_store() as (engine, url), connections() as peak:
        async with log_hidden():
            await fill(engine, codec, config.events)
            spawned = time.perf_counter()
            workers = spawn(url, config, run_id)
            try:
                held = await settle(engine, config, owners)
                startup = time.perf_counter() - spawned
                cpu_before = sum(cpu_seconds(w.pid) for w in workers)
                server_before = postgres_seconds()
                own_before = time.process_time()
                machine_before = machine_seconds()
                started = time.perf_counter()
            except BaseException:
                stop(workers)
                raise
        # The transaction has ended: every event is visible; the last one wakes the workers.
        try:
            head = await last_event(engine, codec, config.events)
            held_back_s = await caught_up(engine, projection.name, config.partitions, head)
            seconds = time.perf_counter() - started
            cpu = sum(cpu_seconds(w.pid) for w in workers) - cpu_before
            server = postgres_seconds()
            own = time.process_time() - own_before
            machine = machine_seconds()
        finally:
            stop(workers)
        postgres = sum(v - server_before.get(pid, 0.0) for pid, v in server.items())
        busy = machine[0] - machine_before[0]
        documents = ReadStore(engine).documents(projection)
        per_stream = config.events // STREAMS
        exact = await documents.count({"events": per_stream})
    if exact != STREAMS:
        raise AssertionError(f"{exact} of {STREAMS} streams' documents count their events")
    return {
        "workload": config.workload,
        "partitions": config.partitions,
        "workers": config.workers,
        "events": config.events,
        "streams": STREAMS,
        "seconds": seconds,
        "events_per_s": config.events / seconds,
        "startup_s": startup,
        "workers_cpu_s": cpu,
        "postgres_cpu_s": postgres,
        "orchestrator_cpu_s": own,
        "other_cpu_s": busy - cpu - postgres - own,
        "machine_cpu_s": busy,
        "machine_s": machine[1] - machine_before[1],
        "layout": held,
        "peak_connections": peak[0],
        "held_back_s": held_back_s,
        "streams_exact": exact,
    }


# -- what a partition can do at most ----------------------------------------------------------


async def sleep_latency(n: int = 500) -> float:
    """Seconds one ``asyncio.sleep(IO_WAIT)`` takes here (timer resolution included)."""
    started = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(IO_WAIT)
    return (time.perf_counter() - started) / n


def work_seconds(n: int = 300) -> float:
    started = time.perf_counter()
    for i in range(n):
        work(f"calibration-{i}")
    return (time.perf_counter() - started) / n


# -- the report ------------------------------------------------------------------------------


def ratios(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Per configuration, the median rate of its undisturbed runs (of all, flagged, when
    every one was disturbed); against its workload's one-worker median (and, for ``io``, the
    target, the ceiling of its partitions and the unpartitioned rate)."""
    measured: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        if "error" not in r:
            measured.setdefault((r["workload"], r["workers"]), []).append(r)
    rates: dict[tuple[str, int], list[float]] = {}
    disturbed_only: set[tuple[str, int]] = set()
    for config, runs in measured.items():
        clean = [r["events_per_s"] for r in runs if not r["disturbed"]]
        rates[config] = clean or [r["events_per_s"] for r in runs]
        if not clean:
            disturbed_only.add(config)
    out = []
    for (workload, workers), values in rates.items():
        median = statistics.median(values)
        check: dict[str, Any] = {
            "workload": workload,
            "workers": workers,
            "rounds": values,
            "disturbed": (workload, workers) in disturbed_only,
            "events_per_s": median,
            "target": TARGET if workload == "io" and workers > 1 else None,
        }
        one = rates.get((workload, 1))
        if one is not None:
            check["vs_one_worker"] = median / statistics.median(one)
            check["vs_ideal"] = check["vs_one_worker"] / workers
        if workload == "io":
            check["vs_ceiling"] = median / meta["io_ceiling_events_per_s"]
            unpartitioned = rates.get(("io-unpartitioned", 1))
            if unpartitioned is not None:
                check["vs_unpartitioned"] = median / statistics.median(unpartitioned)
        out.append(check)
    return out


def render(meta: dict[str, Any], rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    lines = [
        "# Partitioned projections: benchmark results",
        "",
        f"{meta['date']} · {meta['machine']} · {meta['cores']} cores, PostgreSQL on the same"
        f" machine (load average {meta['load_average'][0]} before, {meta['load_average'][1]}"
        f" after) · lease_ttl {meta['lease_ttl']} s · batch_size {meta['batch_size']} ·"
        f" asyncio.sleep({IO_WAIT}) takes {meta['io_wait_ms']:.3f} ms here · the CPU-bound"
        f" work ({CPU_ROUNDS} PBKDF2 rounds) {meta['cpu_work_ms']:.3f} ms"
        f"{' · QUICK (not a measurement)' if meta['quick'] else ''}",
        "",
        "Timed from the moment every partition is held by its final owner and the log is"
        " released to the moment every partition's checkpoint is at the head; start-up"
        " (spawning, imports, first claims, hand-overs) is excluded and shown apart. CPU"
        " seconds are over the timed window, out of seconds x cores: the workers', the"
        " PostgreSQL server's, and the rest of the machine's but this process's (other work)."
        f" A run is disturbed when other transactions in the cluster held its events back"
        f" for 0.2 s or more, or other work took more than {100 * DISTURBING:.0f} % of the"
        f" machine's CPU; a disturbed configuration is measured once more, and the medians"
        f" take the undisturbed runs.",
        "",
        "| round | attempt | workload | partitions | workers | events | seconds | events/s |"
        " start-up s | CPU s: workers | PostgreSQL | other work | peak connections |"
        " held back by others, s | streams exact | layout | disturbed |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        cells = f"{r['round']} | {r['attempt']} | {r['workload']} | {r['partitions']}"
        cells += f" | {r['workers']} | {r['events']:,}"
        if "error" in r:
            lines.append(f"| {cells} | - | - | | | | | | | | | | {r['error'][:160]} |")
            continue
        held = ", ".join(str(v) for v in sorted(r["layout"].values(), reverse=True))
        lines.append(
            f"| {cells} | {r['seconds']:.2f} | {r['events_per_s']:,.0f} |"
            f" {r['startup_s']:.1f} |"
            f" {r['workers_cpu_s']:.1f} | {r['postgres_cpu_s']:.1f} | {r['other_cpu_s']:.1f} |"
            f" {r['peak_connections']} | {r['held_back_s']:.1f} |"
            f" {r['streams_exact']:,} of {r['streams']:,} | {held} | {r['disturbed']} |"
        )
    lines += [
        "",
        "| workload | workers | events/s, each undisturbed run | median | / one worker's |"
        " / (N x one worker's) | target | / ceiling of 8 partitions |"
        " / unpartitioned, one worker |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in checks:
        target = c["target"]
        vs_one, vs_ideal, ceiling = c.get("vs_one_worker"), c.get("vs_ideal"), c.get("vs_ceiling")
        unpartitioned = c.get("vs_unpartitioned")
        mark = (
            "" if target is None or vs_ideal is None else (" ✅" if vs_ideal >= target else " ❌")
        )
        lines.append(
            f"| {c['workload']} | {c['workers']} |"
            f" {', '.join(f'{v:,.0f}' for v in c['rounds'])}"
            f"{' (all disturbed)' if c['disturbed'] else ''} | {c['events_per_s']:,.0f} |"
            f" {'' if vs_one is None else f'{vs_one:.2f}x'} |"
            f" {'' if vs_ideal is None else f'{vs_ideal:.2f}'}{mark} |"
            f" {'' if target is None else f'>= {target}'} |"
            f" {'' if ceiling is None else f'{ceiling:.2f}'} |"
            f" {'' if unpartitioned is None else f'{unpartitioned:.2f}x'} |"
        )
    lines += [
        "",
        f"The ceiling: each partition handles its events one after the other, so with a"
        f" {IO_WAIT * 1000:g} ms wait per event (measured: {meta['io_wait_ms']:.3f} ms) the"
        f" catch-up lasts at least as long as the largest partition's share of the events"
        f" ({100 * meta['io_largest_partition']:.1f} %) takes: at most"
        f" {meta['io_ceiling_events_per_s']:,.0f} events/s, however many workers share the 8"
        f" partitions (one worker already runs its 8 as 8 concurrent tasks).",
        "",
        "`eventsourcing` 9.5.6 has no partitioned projections (one tracking position per"
        " projection, worked on by one runner): there is no counterpart to run beside these"
        " rows.",
        "",
    ]
    return "\n".join(lines)


async def run_all(chosen_configs: list[Config], rounds: int, attempts: int) -> list[dict[str, Any]]:
    """Every configuration once a round, in the opposite order every other round (so that a
    change in the machine's load falls on all of them); one that other work disturbed is
    measured again (up to ``attempts`` times a round), every attempt kept."""
    rows: list[dict[str, Any]] = []
    for round_ in range(1, rounds + 1):
        for config in chosen_configs if round_ % 2 else chosen_configs[::-1]:
            for attempt in range(1, attempts + 1):
                row = await _one(config, round_, attempt)
                rows.append(row)
                if not row.get("disturbed"):
                    break
    return rows


async def _one(config: Config, round_: int, attempt: int) -> dict[str, Any]:
    run = {"round": round_, "attempt": attempt}
    try:
        row = {**run, **await measure(config)}
    except Exception as exc:  # an unreachable PostgreSQL, a fleet that never settles
        error = f"{type(exc).__name__}: {exc}"
        print(f"{config.workload:17} {config.workers} workers ERROR {error}", flush=True)
        return {**run, **vars(config), "partitions": config.partitions, "error": error}
    row["disturbed"] = disturbed(row)
    print(
        f"round {round_} {row['workload']:17} {row['partitions']} partitions"
        f" {row['workers']} workers"
        f" {row['events']:>7,} events {row['seconds']:6.2f} s {row['events_per_s']:>8,.0f}"
        f" events/s (start-up {row['startup_s']:.1f} s, CPU s: workers"
        f" {row['workers_cpu_s']:.1f}, PostgreSQL {row['postgres_cpu_s']:.1f}, not ours"
        f" {row['other_cpu_s']:.1f}; peak connections {row['peak_connections']}, held back"
        f" by others {row['held_back_s']:.1f} s, streams exact {row['streams_exact']})"
        + (f" DISTURBED: {row['disturbed']}" if row["disturbed"] else ""),
        flush=True,
    )
    return row


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark as the command line ``argv`` says; the raw rows and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke test")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    workloads = chosen("--workloads", args.workloads, list(WORKLOADS))
    rounds = 1 if args.quick else args.rounds
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    io_wait = asyncio.run(sleep_latency())
    cpu_work = work_seconds()
    attempts = 1 if args.quick else ATTEMPTS
    rows = asyncio.run(run_all(configs(workloads, args.quick), rounds, attempts))
    meta = run_facts(
        load_before,
        quick=args.quick,
        rounds=rounds,
        workloads=workloads,
        lease_ttl=LEASE_TTL,
        batch_size=BATCH_SIZE,
        io_wait_ms=io_wait * 1000,
        cpu_work_ms=cpu_work * 1000,
        io_largest_partition=largest_partition(WORKLOADS["io"].partitions),
        io_ceiling_events_per_s=1 / (largest_partition(WORKLOADS["io"].partitions) * io_wait),
    )
    checks = ratios(rows, meta)
    result = {"meta": meta, "rows": rows, "ratios": checks}
    keep = workloads == list(WORKLOADS) and not args.quick and not any("error" in r for r in rows)
    save("partitions", result, render(meta, rows, checks), out=args.out, keep=keep)
    return result


def main() -> None:
    exit_if_failed(run())


if __name__ == "__main__":
    main()
