"""The partitioned-projection contract, as tests an engine runs: a projection of several
partitions, each with its own checkpoint and lease, is shared by the runners working on it,
applies every event once and each stream's in order, switches to a new layout only once every
partition of it has caught up, and answers "caught up to N" for all of its partitions."""

from __future__ import annotations

import asyncio
from collections import Counter as Tally

from facta.projections import ProjectionRunner, ReadStore
from facta.projections.status import RebuildProgress
from facta.store.engine import Engine
from facta.store.read_models import partition_of
from facta.testing.conformance.read_models import (
    CODEC,
    Counters,
    _counted,
    _eventually,
    _Gated,
    _running,
    _ticks,
)


class Split(Counters):
    """Counters in four partitions (by stream)."""

    name = "conformance_split"
    partitions = 4


class SplitTwice(Split):
    """The same projection at version 2, laid out in eight partitions."""

    version = 2
    partitions = 8


class GatedSplit(_Gated):
    """Split, whose handler stalls at tick-0 version 3 until its gate opens."""

    name = Split.name
    partitions = Split.partitions


def _runner(
    store: Engine, owner: str, *handlers: Counters, lease_ttl: float = 1.5
) -> ProjectionRunner:
    return ProjectionRunner(
        store,
        list(handlers) or [Split()],
        codec=CODEC,
        owner=owner,
        batch_size=7,
        lease_ttl=lease_ttl,
        poll_interval=0.05,
    )


async def _split_equal(store: Engine, streams: int, per_stream: int) -> bool:
    page = await ReadStore(store).documents(Split).query(limit=1000)
    return {c.stream: c for c in page.items} == _counted(streams, per_stream)


async def _owners(store: Engine, name: str) -> Tally[str | None]:
    rows = [r for r in await store.read_models.slots(name) if r.active]
    return Tally(r.owner for r in rows)


class PartitionContract:
    """What every engine does for partitioned projections, through the runner. Needs a
    ``store`` fixture: an open, empty engine."""

    async def test_partitions_apply_every_event_once_in_stream_order(self, store: Engine) -> None:
        # Counters raises on a version out of order or seen twice: per-stream order holds.
        await _ticks(store, 12, 5)
        async with _running(_runner(store, "one")):
            await _eventually(lambda: _split_equal(store, 12, 5))
            await _ticks(store, 12, 2)
            await _eventually(lambda: _split_equal(store, 12, 7))
        statuses = await ReadStore(store).status(Split.name)
        assert [(s.partition, s.partitions, s.error) for s in statuses] == [
            (p, 4, None) for p in range(4)
        ]
        # Each partition handled exactly its streams' events.
        per_partition = Tally(partition_of(f"tick-{s}", 4) for s in range(12))
        assert {s.partition: s.handled for s in statuses} == {
            p: per_partition[p] * 7 for p in range(4)
        }

    async def test_two_runners_share_the_partitions_and_one_takes_all_when_the_other_goes(
        self, store: Engine
    ) -> None:
        await _ticks(store, 8, 3)
        first, second = _runner(store, "first"), _runner(store, "second")
        async with _running(first):
            await _eventually(lambda: _split_equal(store, 8, 3))
            assert (await _owners(store, Split.name))["first"] == 4
            async with _running(second):  # joins: the first hands two partitions over
                await _eventually(lambda: _holds(store, {"first": 2, "second": 2}), seconds=30)
                await _ticks(store, 8, 2)
                await _eventually(lambda: _split_equal(store, 8, 5))
            # The second shut down cleanly: it let go, and the first takes everything back.
            await _eventually(lambda: _holds(store, {"first": 4}), seconds=30)
            await _ticks(store, 8, 1)
            await _eventually(lambda: _split_equal(store, 8, 6))

    async def test_a_runner_that_stops_lets_go_of_every_partition_at_once(
        self, store: Engine
    ) -> None:
        await _ticks(store, 8, 2)
        async with _running(_runner(store, "one")):
            await _eventually(lambda: _split_equal(store, 8, 2))
            await _eventually(lambda: _holds(store, {"one": 4}))
        # Cancelled (as on SIGTERM): no lease left for another runner to wait out, and gone
        # from the runners sharing it (the next one to beat counts itself only).
        assert await _owners(store, Split.name) == Tally({None: 4})
        assert await store.read_models.runners(Split.name, "next", 1.5) == 1

    async def test_a_partition_whose_lease_ran_out_writes_nothing_and_says_which(
        self, store: Engine
    ) -> None:
        """Runner A stalls in tick-0's partition past its lease; B takes it over and
        finishes; A's late commit is refused, and what A reports names the partition."""
        await _ticks(store, 3, 5)
        gated = GatedSplit()
        a = _runner(store, "a", gated, lease_ttl=0.3)
        stalled = asyncio.create_task(a.catch_up())
        async with asyncio.timeout(20):
            await gated.reached.wait()
        async with _running(_runner(store, "b", lease_ttl=0.3)):
            await _eventually(lambda: _split_equal(store, 3, 5))
        gated.gate.set()
        async with asyncio.timeout(20):
            await stalled
        partition = partition_of("tick-0", Split.partitions)
        reason = a.waiting[f"{Split.name}#{partition}"]
        assert "no longer held" in reason
        assert f"partition {partition}" in reason
        assert await _split_equal(store, 3, 5)  # nothing counted twice

    async def test_waiting_for_a_position_covers_every_partition(self, store: Engine) -> None:
        await _ticks(store, 4, 2)
        reads = ReadStore(store)
        head = await store.head()
        assert not await reads.wait_for(Split.name, head, max_wait=0.2)  # nothing runs it
        async with _running(_runner(store, "one")):
            assert await reads.wait_for(Split.name, head, max_wait=20)
            # Every partition reached the head, the idle ones too.
            rows = [r for r in await store.read_models.slots(Split.name) if r.active]
            assert len(rows) == 4
            assert all(r.position >= head for r in rows)

    async def test_a_new_layout_is_built_beside_the_old_and_switched_to_when_all_caught_up(
        self, store: Engine
    ) -> None:
        await _ticks(store, 10, 3)
        async with _running(_runner(store, "old")):
            await _eventually(lambda: _split_equal(store, 10, 3))
        # The same version in another number of partitions is refused, with the reason.
        same_version = type("Resplit", (Split,), {"partitions": 2})
        stale = _runner(store, "stale", same_version())
        await stale.catch_up()
        assert "raise the projection's version" in stale.waiting[f"{Split.name}#0"]
        # Version 2 in eight partitions: built beside, then the only active slot.
        async with _running(_runner(store, "new", SplitTwice())):
            await _eventually(lambda: _active_layout(store, 2, 8), seconds=30)
            await _eventually(lambda: _split_equal(store, 10, 3))
            await _ticks(store, 10, 1)
            await _eventually(lambda: _split_equal(store, 10, 4))
        rows = await store.read_models.slots(Split.name)
        assert {(r.version, r.active) for r in rows} == {(2, True)}

    async def test_a_rebuild_runs_every_partition_and_switches_once(self, store: Engine) -> None:
        await _ticks(store, 6, 4)
        runner = _runner(store, "one")
        await runner.catch_up()
        assert await _split_equal(store, 6, 4)
        [before] = {r.slot for r in await store.read_models.slots(Split.name)}
        seen: list[RebuildProgress] = []
        await runner.rebuild(Split.name, progress=seen.append)
        rows = await store.read_models.slots(Split.name)
        assert {r.slot for r in rows} == {before + 1}
        assert len(rows) == 4
        assert all(r.active and r.state == "running" for r in rows)
        assert await _split_equal(store, 6, 4)
        assert seen[-1].done
        assert seen[-1].events == 24


async def _holds(store: Engine, wanted: dict[str, int]) -> bool:
    owners = await _owners(store, Split.name)
    return {k: v for k, v in owners.items() if k is not None} == wanted


async def _active_layout(store: Engine, version: int, partitions: int) -> bool:
    rows = [r for r in await store.read_models.slots(Split.name) if r.active]
    return len(rows) == partitions and all(r.version == version for r in rows)


__all__ = ["PartitionContract"]
