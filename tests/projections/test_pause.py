"""Pausing a projection, on every engine: its runner lets go at its next renewal or commit
and writes nothing more, no runner takes it while paused, and resumed it catches up from its
checkpoint, every event once."""

from __future__ import annotations

import asyncio

from facta import Engine
from facta.projections import ProjectionRunner, ReadStore
from tests.projections.helpers import Counters, codec, eventually, fill


async def test_a_paused_projection_stays_put_and_resumed_catches_up(store: Engine) -> None:
    runner = ProjectionRunner(
        store, [Counters()], codec=codec, lease_ttl=0.6, poll_interval=0.05, batch_size=10
    )
    read_store = ReadStore(store)
    task = asyncio.create_task(runner.run())
    try:
        head = await fill(store, 3, 5)

        async def at(position: object) -> bool:
            statuses = await read_store.status("counters")
            return bool(statuses) and all(s.position == position for s in statuses)

        await eventually(lambda: at(head))
        assert await read_store.pause("counters") == 1
        [paused] = await read_store.status("counters")
        assert paused.state == "paused"
        assert paused.owner is None
        await asyncio.sleep(0.5)  # the runner's renewal fails: it lets go
        more = await fill(store, 3, 5, start=5)
        await asyncio.sleep(1.0)
        [still] = await read_store.status("counters")
        assert still.state == "paused"
        assert still.position == head
        assert still.lag_events > 0
        assert "paused" in runner.waiting.get("counters", "")
        assert await read_store.pause("counters") == 0  # paused already
        assert await read_store.resume("counters") == 1
        assert await read_store.resume("counters") == 0  # not paused any more
        await eventually(lambda: at(more))
        [running] = await read_store.status("counters")
        assert running.state == "running"
        documents = read_store.documents(Counters)
        counters = (await documents.query(limit=10)).items
        assert sorted(c.events for c in counters) == [5] * 6  # each event once
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
