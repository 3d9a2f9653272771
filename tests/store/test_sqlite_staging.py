"""The SQLite store writes a group commit's statements on the event loop and commits them on
a thread of its own (``_stage``); what must hold whatever the timing."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from facta import ANY, ExpectedVersion, NewEvent, RecordedEvent, Snapshot
from facta.store.sqlite.events import SOLO_PROBE, SQLiteEventStore
from tests.store.loop import loop_turns_while


def tick() -> list[NewEvent]:
    return [NewEvent("Tick", b"{}")]


async def test_a_batch_waits_for_another_processs_write_lock_off_the_loop(
    sqlite_store: SQLiteEventStore,
) -> None:
    store = sqlite_store
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writing
        appends = asyncio.gather(*(store.append(f"s-{i}", tick(), 0) for i in range(8)))
        await loop_turns_while(appends)  # the batch waits for the lock off the loop
        other.execute("ROLLBACK")
        results = await asyncio.wait_for(appends, 30)
        assert [r.version for r in results] == [1] * 8
        assert len(await store.read_all()) == 8
    finally:
        other.close()


@pytest.mark.parametrize(
    ("events", "expected"),
    [(1, 0), (1, ANY), (3, 0)],
    ids=["one statement", "any version", "several events"],
)
async def test_a_lone_append_waits_for_another_processs_write_lock_off_the_loop(
    sqlite_store: SQLiteEventStore, events: int, expected: ExpectedVersion
) -> None:
    """A lone append is written on the loop, without a thread hand-off; when the file is
    locked it must go to the writer thread like a batch, not hold the loop for the busy
    timeout (30 s)."""
    store = sqlite_store
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writing, for 1.5 s
        release = threading.Timer(1.5, other.execute, ("ROLLBACK",))
        release.start()
        batch = [NewEvent("Tick", b"{}") for _ in range(events)]
        append = asyncio.ensure_future(store.append("s", batch, expected))
        await loop_turns_while(append)
        result = await asyncio.wait_for(append, 30)
        assert result.version == events
        assert len(await store.read_all()) == events
        release.join()
    finally:
        other.close()


@pytest.mark.timeout(30)  # on the old code the store hung: closing it waited for good
async def test_a_lone_append_whose_begin_fails_fails_alone(
    sqlite_store: SQLiteEventStore,
) -> None:
    """A BEGIN that fails on the loop (here: the connection is read-only for a moment) fails
    that append and leaves the store writing; it used to escape with the store still marked
    as flushing, and every later append waited for good."""
    store = sqlite_store
    on_the_loop = store._staging()
    on_the_loop.execute("PRAGMA query_only=1")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await store.append("s", tick(), ANY)
    on_the_loop.execute("PRAGMA query_only=0")
    result = await asyncio.wait_for(store.append("s", tick(), ANY), 5)
    assert result.version == 1
    assert len(await store.read_all()) == 1


async def test_writes_queued_on_the_writer_thread_do_not_wait_on_a_staged_commit(
    sqlite_store: SQLiteEventStore,
) -> None:
    # A snapshot is written on the writer thread. Had the staged batch's COMMIT queued up
    # behind it there, the snapshot would wait for the lock the batch holds, and the batch
    # for the snapshot: both stuck for the 30 s busy timeout, then "database is locked".
    store = sqlite_store
    started = time.monotonic()
    for round_ in range(30):
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    store.save_snapshot(Snapshot(f"s-{i}", round_ + 1, 1, b"{}", 0.0))
                    for i in range(3)
                ),
                *(store.append(f"s-{i}", tick(), round_) for i in range(8)),
            ),
            10,
        )
    assert time.monotonic() - started < 20
    assert len(await store.read_all(limit=1000)) == 240


class _SuspendingHook:
    """Declares it does only synchronous work on the transaction, then suspends anyway."""

    takes_batches = True
    runs_in_place = True

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, tx: Any, records: Sequence[RecordedEvent]) -> None:
        self.calls += 1
        for record in records:
            tx.execute("INSERT INTO seen VALUES (?)", (record.stream_id,))
        await asyncio.sleep(0)


@pytest.mark.timeout(60)  # a hook suspended on the loop's thread would block it for good
async def test_a_hook_that_suspends_on_the_loop_is_run_again_on_the_writer_thread(
    sqlite_store: SQLiteEventStore,
) -> None:
    store = sqlite_store
    setup = sqlite3.connect(store.path, isolation_level=None)
    setup.execute("CREATE TABLE seen (stream_id TEXT NOT NULL)")
    setup.close()
    hook = _SuspendingHook()
    results = await asyncio.gather(
        *(store.append(f"h-{i}", tick(), 0, hook=hook) for i in range(16))
    )
    assert [r.version for r in results] == [1] * 16
    check = sqlite3.connect(store.path)
    seen = sorted(row[0] for row in check.execute("SELECT stream_id FROM seen"))
    check.close()
    # The rolled-back first try left nothing: each event's row is there once.
    assert seen == sorted(f"h-{i}" for i in range(16))
    assert hook.calls >= 2


async def test_a_writer_on_its_own_stops_giving_the_loop_a_turn_and_batching_comes_back(
    sqlite_store: SQLiteEventStore,
) -> None:
    store = sqlite_store
    batches: list[int] = []
    write = store._write

    def counting_write(batch: Any, *args: Any, **kwargs: Any) -> None:
        batches.append(len(batch))
        write(batch, *args, **kwargs)

    store._write = counting_write  # type: ignore[method-assign]
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0)
        before = turns
        for n in range(320):  # one writer, one append at a time
            await store.append("solo", tick(), n)
        # Each of the first SOLO_PROBE appends gave the loop a turn, then one in SOLO_PROBE.
        assert turns - before <= 2 * SOLO_PROBE + 320 // SOLO_PROBE
        assert set(batches) == {1}
        batches.clear()
        # Now many at once: within SOLO_PROBE appends written alone, commits are shared.
        await asyncio.gather(*(store.append(f"many-{i}", tick(), 0) for i in range(200)))
        assert sum(batches) == 200
        assert batches.count(1) <= SOLO_PROBE
        assert max(batches) > 10
    finally:
        ticking.cancel()
