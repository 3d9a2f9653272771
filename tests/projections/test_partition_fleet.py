"""A partitioned projection shared by real runner processes on PostgreSQL.

Four ``facta projections run`` workers share one projection of eight partitions over 200,000
events (2,000 streams, their events interleaved in the log); once all four run, each holds two
partitions. Two are SIGKILLed in the middle of the catch-up: the other two take their
partitions over from the checkpoints and hold four each. One of those is then paused (SIGSTOP)
with a batch in hand until the other has taken its partitions, its lease having run out, and
resumed (SIGCONT): its commits are refused (LeaseLost), and it joins in again.

What must hold at the end: no partition failed, and every stream's document holds each of its
versions once, in the log's order (the handler raises on anything else, stopping the
partition). And the catalog's own record of every checkpoint move and change of owner (an
audit trigger, with the server's clock) shows each partition's checkpoint going forward only,
from the start of the log to its head without a gap, each move made by the process whose lease
covered it and which applied the events it passed, and no move by the paused process from
the moment it stopped until it took a partition again.

A second test stops a runner at the worst moment, inside its commit with its checkpoint's row
locked: the server must end that transaction once it has waited a lease, or no runner could
take over any of the projection's partitions until the stopped one came back.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import itertools
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from facta import NewEvent, Position
from facta.projections import ProjectionRunner, ProjectionStatus, ReadStore
from facta.store.base import START
from facta.store.read_models import partition_of
from tests.conftest import POSTGRES_URL, ScratchPostgresStore, open_scratch_postgres
from tests.projections.helpers import Applications, Applied

# The runner processes and their pools hold 20 to 35 of the server's connections for most of a
# minute: beside the other tests of `make test`'s parallel phase (up to 83 at once) that went
# past PostgreSQL's default max_connections (100), and tests failed for want of one. So these
# run alone, after the parallel phase.
pytestmark = pytest.mark.serial

STREAMS, ROUNDS, PER_ROUND = 2_000, 10, 10  # 200,000 events: 10 rounds of 10 per stream
EVENTS = STREAMS * ROUNDS * PER_ROUND
PARTITIONS = Applications.partitions
LEASE_TTL = 2.0
NAME = Applications.name
FACTA = Path(sys.executable).parent / "facta"
ROOT = Path(__file__).resolve().parents[2]
OWNER = re.compile(r"[^:]+:(\d+):[0-9a-f]{8}")  # facta's owner ids: host:pid:random

# Every change of a catalog row's owner or checkpoint, as the server saw it (rolled back with
# the transaction that made it): a record that the runners cannot leave out of.
AUDIT = """
CREATE TABLE {schema}.fleet_audit (
    id           bigserial PRIMARY KEY,
    at           double precision NOT NULL,
    part         integer NOT NULL,
    old_owner    text,
    new_owner    text,
    old_commit   bigint NOT NULL,
    old_sequence bigint NOT NULL,
    new_commit   bigint NOT NULL,
    new_sequence bigint NOT NULL
);
CREATE FUNCTION {schema}.fleet_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.fleet_audit
        (at, part, old_owner, new_owner, old_commit, old_sequence, new_commit, new_sequence)
    VALUES (extract(epoch FROM clock_timestamp()), NEW.part, OLD.owner, NEW.owner,
            OLD.checkpoint_commit, OLD.checkpoint_sequence,
            NEW.checkpoint_commit, NEW.checkpoint_sequence);
    RETURN NULL;
END $$;
CREATE TRIGGER fleet_audit AFTER UPDATE ON {schema}.projection_slots FOR EACH ROW
    WHEN (OLD.owner IS DISTINCT FROM NEW.owner
          OR OLD.checkpoint_commit <> NEW.checkpoint_commit
          OR OLD.checkpoint_sequence <> NEW.checkpoint_sequence)
    EXECUTE FUNCTION {schema}.fleet_audit();
"""


@dataclass(frozen=True)
class Change:
    """One audited change of a catalog row."""

    id: int
    at: float
    part: int
    old_owner: str | None
    new_owner: str | None
    old: Position
    new: Position


@dataclass
class Worker:
    """A ``facta projections run`` process, and the file its stderr (its log) goes to."""

    process: asyncio.subprocess.Process
    stderr: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@pytest.fixture
async def store() -> AsyncIterator[ScratchPostgresStore]:
    opened = await open_scratch_postgres(pool_size=2)  # few connections: see pytestmark
    yield opened
    await opened.close()  # drops the schema


@pytest.fixture
async def reads(store: ScratchPostgresStore) -> AsyncIterator[ReadStore]:
    opened = ReadStore(store)
    yield opened
    await opened.close()


async def generate(
    store: ScratchPostgresStore, streams: int = STREAMS, rounds: int = ROUNDS
) -> Position:
    """Ticks with n = version, PER_ROUND per stream per round: each append call carries a
    stream's events of a round, and the calls of a round go at once (group commit). Returns
    the last one's position once readers see it (a transaction anywhere in the cluster can
    hold PostgreSQL's readers back)."""
    last = START
    for round in range(rounds):
        base = round * PER_ROUND
        results = await asyncio.gather(
            *(
                store.append(
                    f"tick-{s}",
                    [
                        NewEvent("Tick", msgspec.json.encode({"n": base + i}))
                        for i in range(1, PER_ROUND + 1)
                    ],
                    base,
                )
                for s in range(streams)
            )
        )
        last = max(last, *(r.position for r in results))
    while await store.head() < last:
        await store.wait_for_events(await store.head(), 0.05)
    return last


async def execute(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def query(sql: str) -> list[Any]:
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        return await connection.fetch(sql)
    finally:
        await connection.close()


async def spawn(url: str, folder: Path, index: int) -> Worker:
    env = {k: v for k, v in os.environ.items() if k not in ("FACTA_STORE", "FACTA_PROJECTIONS")}
    stderr = folder / f"worker-{index}.err"
    with (folder / f"worker-{index}.out").open("wb") as out, stderr.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            str(FACTA),
            *("projections", "run", "--store", url, "--lease-ttl", str(LEASE_TTL)),
            *("--projection", "tests.projections.helpers:Applications"),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    return Worker(process, stderr)


def pid_of(owner: str | None) -> int | None:
    """The pid in a runner's owner id (None for no owner, or a slot being set up)."""
    found = OWNER.fullmatch(owner or "")
    return int(found[1]) if found else None


async def statuses(reads: ReadStore) -> list[ProjectionStatus]:
    found = await reads.status(NAME)
    failed = [s for s in found if s.state == "failed"]
    assert not failed, [(s.partition, s.error_position, s.error) for s in failed]
    return found


def holders(found: Sequence[ProjectionStatus]) -> dict[int, int | None]:
    """Partition -> pid of the runner whose lease on it runs (None: nobody's)."""
    return {s.partition: pid_of(s.owner) if s.state == "running" else None for s in found}


def shares(found: Sequence[ProjectionStatus]) -> dict[int | None, int]:
    return dict(collections.Counter(holders(found).values()))


async def until(
    reads: ReadStore, check: Callable[[list[ProjectionStatus]], bool], what: str, seconds: float
) -> list[ProjectionStatus]:
    deadline = time.monotonic() + seconds
    while True:
        found = await statuses(reads)
        if len(found) == PARTITIONS and check(found):
            return found
        if time.monotonic() > deadline:
            summary = [(s.partition, s.owner, s.state, str(s.position)) for s in found]
            raise AssertionError(f"gave up waiting {seconds:.0f} s for {what}: {summary}")
        await asyncio.sleep(0.05)


async def stop(worker: Worker) -> None:
    if worker.process.returncode is None:
        worker.process.send_signal(signal.SIGKILL)  # a stopped process dies of it too
        await worker.process.wait()


async def audit(schema: str) -> list[Change]:
    rows = await query(f"SELECT * FROM {schema}.fleet_audit ORDER BY id")
    return [
        Change(
            r["id"],
            r["at"],
            r["part"],
            r["old_owner"],
            r["new_owner"],
            Position(r["old_commit"], r["old_sequence"]),
            Position(r["new_commit"], r["new_sequence"]),
        )
        for r in rows
    ]


async def documents(reads: ReadStore) -> dict[str, Applied]:
    found: dict[str, Applied] = {}
    after = None
    while True:
        page = await reads.documents(Applications).query(limit=1000, after=after)
        found.update((d.stream, d) for d in page.items)
        if page.next is None:
            return found
        after = page.next


async def log_of(store: ScratchPostgresStore) -> list[Any]:
    events, after = [], START
    while page := await store.read_all(after=after, limit=10_000):
        events.extend(page)
        after = page[-1].position
    return events


@dataclass(frozen=True)
class Pause:
    """A runner paused past its lease: the partitions it held, the catalog's rows of the
    moment it stopped, and when it stopped and resumed (the server's clock's epoch)."""

    held: set[int]
    rows: dict[int, Any]
    stopped_at: float
    resumed_at: float


async def pause_past_its_lease(
    store: ScratchPostgresStore,
    reads: ReadStore,
    found: list[ProjectionStatus],
    paused: Worker,
    other: Worker,
) -> Pause:
    """Once ``paused`` has committed a batch on each of its partitions (so on each of its
    connections: see the second test), SIGSTOP it until ``other`` holds them all, then
    SIGCONT."""
    held = {p for p, pid in holders(found).items() if pid == paused.pid}
    taken_at = {s.partition: s.position for s in found}
    await until(
        reads,
        lambda f: all(s.position > taken_at[s.partition] for s in f if s.partition in held),
        "a batch committed on each of its partitions",
        30,
    )
    paused.process.send_signal(signal.SIGSTOP)
    stopped_at = time.time()
    rows = {r.partition: r for r in await store.read_models.slots(NAME)}
    await until(
        reads,
        lambda f: all(holders(f)[p] == other.pid for p in held),
        "the paused runner's partitions to be taken over",
        60,
    )
    resumed_at = time.time()
    paused.process.send_signal(signal.SIGCONT)
    return Pause(held, rows, stopped_at, resumed_at)


def check_the_paused_runner(
    changes: list[Change], pause: Pause, paused: Worker, other: Worker, *, every: bool = True
) -> None:
    """Its partitions were taken only once its leases had run out, it moved no checkpoint
    from the moment it stopped until it took a partition again, and it did try: the
    partitions it held (``every`` one, else some) had a batch refused once it resumed
    (LeaseLost; or, stopped inside its commit, its transaction ended by the server)."""
    paused_owner = pause.rows[min(pause.held)].owner
    for part in pause.held:
        takes = [c for c in changes if c.part == part and c.at > pause.stopped_at]
        first = next(c for c in takes if c.new_owner != c.old_owner)
        assert pid_of(first.new_owner) == other.pid
        assert first.at >= pause.rows[part].lease_until
    for part in range(PARTITIONS):
        retaken = False
        for c in changes:
            if c.part != part or c.at <= pause.stopped_at:
                continue
            if c.new_owner == paused_owner and c.old_owner != c.new_owner:
                assert c.at > pause.resumed_at
                retaken = True
            elif c.new != c.old and c.new_owner == paused_owner:
                assert retaken, (part, c)
    said = paused.stderr.read_text()
    # The console wraps long messages: a line that does not start a message continues one.
    messages = re.sub(r"\n(?!info:|warning:|error:)", " ", said).splitlines()
    refused = [
        re.match(rf".*projection {NAME}#(\d+)(?: lost its lease|: .*; retrying)", line)
        for line in messages
    ]
    said_refused = {int(m.group(1)) for m in refused if m}
    assert said_refused >= pause.held if every else said_refused & pause.held, said


async def test_four_runners_share_eight_partitions_through_kills_and_a_pause(
    store: ScratchPostgresStore, reads: ReadStore, tmp_path: Path
) -> None:
    began = time.monotonic()
    head = await generate(store)
    generated = time.monotonic() - began
    schema = store.schema
    await execute(AUDIT.format(schema=schema))
    url = f"{POSTGRES_URL}?schema={schema}&pool_size=1"
    workers = [await spawn(url, tmp_path, i) for i in range(4)]
    try:
        # All four run: two partitions each, in the middle of the catch-up.
        found = await until(
            reads, lambda f: shares(f) == {w.pid: 2 for w in workers}, "two partitions each", 60
        )
        assert all(s.position < head for s in found), "the catch-up ended before the kills"
        shared = time.monotonic() - began

        # Two killed mid-batch: the other two take their partitions over.
        killed, survivors = workers[:2], workers[2:]
        for worker in killed:
            worker.process.send_signal(signal.SIGKILL)
            await worker.process.wait()
        found = await until(
            reads, lambda f: shares(f) == {w.pid: 4 for w in survivors}, "four each", 60
        )
        took_over = time.monotonic() - began

        # One survivor paused with its partitions behind the head, once it has committed a
        # batch on each (so on each connection: see the test below): the other takes them.
        paused, other = survivors
        pause = await pause_past_its_lease(store, reads, found, paused, other)
        assert all(pause.rows[p].position < head for p in pause.held), pause.rows

        # Resumed, it gets its share back, and the two finish the catch-up.
        found = await until(
            reads,
            lambda f: (
                shares(f) == {w.pid: 4 for w in survivors} and all(s.position == head for s in f)
            ),
            "the catch-up to end with four each",
            90,
        )
        caught_up = time.monotonic() - began
        for worker in survivors:  # SIGTERM: a clean exit, the log flushed
            worker.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.process.wait(), 20)
    finally:
        for worker in workers:
            await stop(worker)
    print(
        f"\n{EVENTS} events generated in {generated:.1f} s; shared at {shared:.1f} s, taken"
        f" over at {took_over:.1f} s, caught up at {caught_up:.1f} s"
    )

    # Every partition handled its own events, and nothing failed.
    events = await log_of(store)
    assert len(events) == EVENTS
    part_of = {f"tick-{s}": partition_of(f"tick-{s}", PARTITIONS) for s in range(STREAMS)}
    per_partition = collections.Counter(part_of[e.stream_id] for e in events)
    assert {s.partition: s.handled for s in found} == per_partition
    assert all(s.error is None for s in found)

    # Each stream's document: its versions once each, in the log's order.
    built = await documents(reads)
    expected: dict[str, list[int]] = collections.defaultdict(list)
    for e in events:
        expected[e.stream_id].append(e.version)
    assert {d.stream: d.versions for d in built.values()} == expected
    assert all(v == list(range(1, ROUNDS * PER_ROUND + 1)) for v in expected.values())

    # The audit: per partition, the checkpoint went from the start to the head, forward only
    # and without a gap, each move by the holder of the lease, who applied what it passed.
    changes = await audit(schema)
    applied_by = {
        (d.stream, version): pid
        for d in built.values()
        for version, pid in zip(d.versions, d.pids, strict=True)
    }
    for part in range(PARTITIONS):
        moves = [c for c in changes if c.part == part and c.new != c.old]
        assert moves[0].old == START
        assert moves[-1].new == head
        for before, after in itertools.pairwise(moves):
            assert after.old == before.new, (part, before, after)
        assert all(m.new > m.old for m in moves), part
        ends = [m.new for m in moves]
        for e in events:
            if part_of[e.stream_id] == part:
                move = moves[bisect.bisect_left(ends, e.position)]
                assert applied_by[e.stream_id, e.version] == pid_of(move.new_owner), (e, move)

    check_the_paused_runner(changes, pause, paused, other)


# A checkpoint move sleeps in the server with its row locked, once: time to stop the runner
# there, as a pause, a lost network or a frozen VM would. It is a partition's second move made
# once every partition has moved, so that each of the runner's connections has run its
# statements before: a runner stopped while it prepares a statement (in its first batch on a
# connection) is not idle in its transaction but in the middle of a statement, for which
# PostgreSQL has no timeout, and keeps its row locked until it resumes or its connection drops.
SLOW_MOVE = """
CREATE SEQUENCE {schema}.fleet_moves;
CREATE FUNCTION {schema}.fleet_slow_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT bool_and(checkpoint_sequence > 0) FROM {schema}.projection_slots)
            AND nextval('{schema}.fleet_moves') = 1 THEN
        PERFORM pg_sleep(1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER fleet_slow_move AFTER UPDATE ON {schema}.projection_slots FOR EACH ROW
    WHEN (OLD.checkpoint_sequence > 0 AND OLD.checkpoint_sequence <> NEW.checkpoint_sequence)
    EXECUTE FUNCTION {schema}.fleet_slow_move();
"""


async def test_a_runner_stopped_inside_its_commit_keeps_no_partition_past_its_lease(
    store: ScratchPostgresStore, reads: ReadStore, tmp_path: Path
) -> None:
    head = await generate(store, streams=200, rounds=3)
    schema = store.schema
    await execute(SLOW_MOVE.format(schema=schema))
    stopped = await spawn(f"{POSTGRES_URL}?schema={schema}&pool_size=1", tmp_path, 0)
    taker = ProjectionRunner(
        store, [Applications()], lease_ttl=LEASE_TTL, poll_interval=0.1, owner="taker"
    )
    taking: asyncio.Task[None] | None = None
    try:
        deadline = time.monotonic() + 30
        while not await query(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
            f" AND application_name = 'facta-runner {schema}'"
        ):
            assert time.monotonic() < deadline, "the runner never moved its checkpoints twice"
            await asyncio.sleep(0.01)
        stopped.process.send_signal(signal.SIGSTOP)  # in the middle of a commit
        taking = asyncio.create_task(taker.run())
        # Its transaction ended by the server a lease after it went idle, the other runner
        # takes every partition over, the one it had locked too, while it is still stopped.
        await until(
            reads,
            lambda f: all(s.owner == "taker" and s.position == head for s in f),
            f"the other runner to take every partition over to {head}",
            6 * LEASE_TTL,
        )
        assert stopped.process.returncode is None
        built = await documents(reads)
        assert {d.stream: d.versions for d in built.values()} == {
            f"tick-{s}": list(range(1, 3 * PER_ROUND + 1)) for s in range(200)
        }
    finally:
        if taking is not None:
            taking.cancel()
            await asyncio.gather(taking, return_exceptions=True)
        await stop(stopped)
