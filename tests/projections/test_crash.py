"""Crashes: a runner process SIGKILLed in the middle of a large catch-up. Whoever carries on
(the same runner restarted, or a second runner taking over) must end with the read model a
clean rebuild gives, every event applied exactly once.

``Counters`` itself proves "exactly once": it fails the projection when an event of a stream
arrives twice or out of order, and the catalog's ``handled`` count moves in the same
transaction as the documents.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from facta import Engine, open_store
from facta.projections import ProjectionRunner, ProjectionStatus, ReadStore
from tests.conftest import POSTGRES_URL, open_scratch_postgres
from tests.projections.helpers import Counter, Counters, codec, fill

RUNNER = """
import asyncio, sys
from facta import open_store
from facta.projections import ProjectionRunner
from tests.projections.helpers import Counters, codec

class Slow(Counters):
    async def handle(self, envelope, session):
        await super().handle(envelope, session)
        if envelope.recorded.version % 20 == 0:
            await asyncio.sleep(0.003)  # a catch-up long enough to be killed in the middle

async def main(url, owner):
    store = await open_store(url)
    runner = ProjectionRunner(
        store, [Slow()], codec=codec, batch_size=50, lease_ttl=1.0, owner=owner,
        poll_interval=0.1,
    )
    await runner.run()

asyncio.run(main(*sys.argv[1:]))
"""

STREAMS, PER_STREAM = 100, 60
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
async def durable(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Engine, str]]:
    """A store of a backend several processes can share, and its URL."""
    if request.param == "sqlite":
        path = tmp_path / "crash.db"
        store: Engine = await open_store(f"sqlite:///{path}")
        url = f"sqlite:///{path}"
    else:
        store = await open_scratch_postgres()
        url = f"{POSTGRES_URL}?schema={store.schema}"  # type: ignore[attr-defined]
    yield store, url
    await store.close()


async def spawn(url: str, owner: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-c", RUNNER, url, owner, cwd=ROOT)


async def status(read_store: ReadStore) -> ProjectionStatus | None:
    found = await read_store.status("counters")
    return found[0] if found else None


async def wait_for(read_store: ReadStore, check: object, seconds: float = 60) -> ProjectionStatus:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        current = await status(read_store)
        if current is not None:
            assert current.state != "failed", current.error
            if check(current):  # type: ignore[operator]
                return current
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting: {current}"
        await asyncio.sleep(0.02)


def kill(process: asyncio.subprocess.Process) -> None:
    os.kill(process.pid, signal.SIGKILL)


async def documents(read_store: ReadStore) -> dict[str, Counter]:
    page = await read_store.documents(Counters).query(limit=1000)
    return {c.stream: c for c in page.items}


def expected() -> dict[str, Counter]:
    total = PER_STREAM * (PER_STREAM + 1) // 2
    return {
        f"tick-{s}": Counter(f"tick-{s}", PER_STREAM, total, PER_STREAM) for s in range(STREAMS)
    }


async def finish(store: Engine, read_store: ReadStore, final: ProjectionStatus) -> None:
    """The read model is complete, counted once per event, and equals a clean rebuild."""
    assert final.handled == STREAMS * PER_STREAM
    built = await documents(read_store)
    assert built == expected()
    runner = ProjectionRunner(store, [Counters()], codec=codec)
    await runner.rebuild("counters")
    await runner.close()
    assert await documents(read_store) == built


async def test_a_runner_killed_mid_catch_up_resumes_from_its_checkpoint(
    durable: tuple[Engine, str],
) -> None:
    store, url = durable
    head = await fill(store, STREAMS, PER_STREAM)
    read_store = ReadStore(store)
    first = await spawn(url, "first")
    try:
        await wait_for(read_store, lambda s: s.position.sequence >= head.sequence // 4)
    finally:
        kill(first)
        await first.wait()
    killed_at = await status(read_store)
    assert killed_at is not None
    assert killed_at.position < head  # it died in the middle

    restarted = await spawn(url, "restarted")
    try:
        final = await wait_for(read_store, lambda s: s.position == head)
    finally:
        kill(restarted)
        await restarted.wait()
    assert final.handled == STREAMS * PER_STREAM
    await finish(store, read_store, final)
    await read_store.close()


async def test_two_runners_one_killed_the_other_takes_over(
    durable: tuple[Engine, str],
) -> None:
    store, url = durable
    head = await fill(store, STREAMS, PER_STREAM)
    read_store = ReadStore(store)
    runners = {"a": await spawn(url, "a"), "b": await spawn(url, "b")}
    try:
        started = await wait_for(
            read_store, lambda s: s.owner in runners and s.position.sequence >= head.sequence // 4
        )
        holder = started.owner
        assert holder is not None
        kill(runners[holder])
        await runners[holder].wait()
        other = "b" if holder == "a" else "a"
        final = await wait_for(read_store, lambda s: s.position == head and s.owner == other)
        assert final.state == "running"
    finally:
        for process in runners.values():
            if process.returncode is None:
                kill(process)
                await process.wait()
    await finish(store, read_store, final)
    await read_store.close()
