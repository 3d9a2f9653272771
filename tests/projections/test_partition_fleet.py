"""A partitioned projection shared by real runner processes on PostgreSQL.

A runner stopped at the worst moment, inside its commit with its checkpoint's row locked: the
server must end that transaction once it has waited a lease, or no runner could take over any
of the projection's partitions until the stopped one came back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from facta import NewEvent, Position
from facta.projections import ProjectionRunner, ProjectionStatus, ReadStore
from facta.store.base import START
from tests.conftest import POSTGRES_URL, ScratchPostgresStore, open_scratch_postgres
from tests.projections.helpers import Applications, Applied

STREAMS, ROUNDS, PER_ROUND = 200, 3, 10
PARTITIONS = Applications.partitions
LEASE_TTL = 2.0
NAME = Applications.name
FACTA = Path(sys.executable).parent / "facta"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    stderr: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@pytest.fixture
async def store() -> AsyncIterator[ScratchPostgresStore]:
    opened = await open_scratch_postgres()
    yield opened
    await opened.close()  # drops the schema


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


async def statuses(reads: ReadStore) -> list[ProjectionStatus]:
    found = await reads.status(NAME)
    failed = [s for s in found if s.state == "failed"]
    assert not failed, [(s.partition, s.error_position, s.error) for s in failed]
    return found


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


async def documents(reads: ReadStore) -> dict[str, Applied]:
    found: dict[str, Applied] = {}
    after = None
    while True:
        page = await reads.documents(Applications).query(limit=1000, after=after)
        found.update((d.stream, d) for d in page.items)
        if page.next is None:
            return found
        after = page.next


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
    store: ScratchPostgresStore, tmp_path: Path
) -> None:
    head = await generate(store, streams=200, rounds=3)
    schema = store.schema
    await execute(SLOW_MOVE.format(schema=schema))
    reads = ReadStore(store)
    stopped = await spawn(f"{POSTGRES_URL}?schema={schema}&pool_size=4", tmp_path, 0)
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
        await reads.close()
