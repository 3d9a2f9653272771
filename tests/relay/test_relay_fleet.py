"""A relay's partitions shared by a fleet of ``facta relay run --partitions 4`` processes, on
the machine's real RabbitMQ and NATS JetStream (issue 22: the relay partitioned the way
projections are, spread over processes without an operator assigning partitions).

One process alone holds all four partitions; a second that joins gets two of them (the first
hands them over); the first SIGKILLed, the second takes its partitions over once their leases
have run out. Events appended all along reach the consumer once each (it drops the repeats a
killed relay's resend may bring), every stream's in order; at the end each partition's
checkpoint is at the head, and the clean exit leaves no lease held.
"""

from __future__ import annotations

import asyncio
import collections
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from facta import NewEvent
from facta.store.engine import Engine
from tests.relay.conftest import Harness, Received, fill, running

STREAMS, PER_STREAM, MORE = 100, 30, 10  # 3,000 events, then 1,000 more twice
PARTITIONS = 4
OWNER = re.compile(r"[^:]+:(\d+):[0-9a-f]{8}")

pytestmark = pytest.mark.timeout(120)


async def append_more(store: Engine, start: int) -> None:
    """``MORE`` events more on every stream, from version ``start``."""
    await asyncio.gather(
        *(
            store.append(
                f"account-{s}",
                [NewEvent("MoneyDeposited", b'{"amount":"1.00"}') for _ in range(MORE)],
                start,
            )
            for s in range(STREAMS)
        )
    )


async def holders(store: Engine, name: str) -> dict[int, int | None]:
    """Partition -> pid of the process holding its lease (None: nobody)."""
    found: dict[int, int | None] = {}
    for p in range(PARTITIONS):
        row = await store.relay_checkpoints.get(f"{name}#{p}/{PARTITIONS}")
        owner = OWNER.fullmatch(row.owner or "") if row is not None else None
        found[p] = int(owner[1]) if owner else None
    return found


async def wait_for_holders(
    store: Engine, name: str, wanted: dict[int, int], what: str, within: float = 30.0
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = collections.Counter(p for p in (await holders(store, name)).values() if p)
        if dict(found) == wanted:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{what}: {found}"
        await asyncio.sleep(0.05)


async def test_relay_processes_share_its_partitions_and_take_over_a_killed_ones(
    plain_broker: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "events.db"
    store = await fill(path, STREAMS, PER_STREAM)
    name = plain_broker.relay_name
    command = [
        sys.executable, "-m", "facta.cli", "relay", "run",
        "--store", f"sqlite:///{path}", "--to", plain_broker.relay_url(), "--name", name,
        "--partitions", str(PARTITIONS), "--lease-ttl", "1", "--batch-size", "100",
        "--max-in-flight", "400", "--quiet",
    ]  # fmt: skip
    received = Received()
    processes: list[asyncio.subprocess.Process] = []

    async def start(index: int) -> asyncio.subprocess.Process:
        with (tmp_path / f"relay-{index}.err").open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                *command, stdout=subprocess.DEVNULL, stderr=err, env=plain_broker.environment()
            )
        processes.append(process)
        return process

    try:
        async with running(plain_broker.consumer(received.handle)):
            first = await start(0)
            await wait_for_holders(store, name, {first.pid: 4}, "the first alone holds all four")
            await received.wait_for(STREAMS * PER_STREAM)

            second = await start(1)
            await wait_for_holders(
                store, name, {first.pid: 2, second.pid: 2}, "two each once the second joined"
            )
            await append_more(store, PER_STREAM)
            await received.wait_for(STREAMS * (PER_STREAM + MORE))

            first.send_signal(signal.SIGKILL)
            await first.wait()
            await wait_for_holders(store, name, {second.pid: 4}, "the second took all four")
            await append_more(store, PER_STREAM + MORE)
            total = STREAMS * (PER_STREAM + 2 * MORE)
            await received.wait_for(total)
            await asyncio.sleep(0.3)  # anything extra would arrive now

            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 20) == 0
        received.assert_complete(STREAMS, PER_STREAM + 2 * MORE)
        head = await store.head()
        for p in range(PARTITIONS):
            row = await store.relay_checkpoints.get(f"{name}#{p}/{PARTITIONS}")
            assert row is not None
            assert (row.position, row.owner) == (head, None), p  # caught up, released
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await store.close()
