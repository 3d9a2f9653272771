"""Erasure (the Erasure capability), as tests an engine runs: a stream's older events gone
from every read while the rest of the log, the stream's version and appends go on as before;
erasing above the version refused; tags of erased events no longer matched; snapshots below a
version deleted; the log's size; compacting; and erasing while others append and read.

What an engine does with an erased event's id appended again is not part of the contract."""

from __future__ import annotations

import asyncio
import itertools
import os
import time

import pytest

from facta.store.base import START, NewEvent, RecordedEvent, Snapshot
from facta.store.boundaries import AppendCondition, Query
from facta.store.engine import Boundaries, Engine, Erasure, Snapshots
from facta.store.erasure import Eraser
from facta.testing.conformance.events import owned_by


def _events(n: int, kind: str = "Happened", *tags: str, pad: int = 0) -> list[NewEvent]:
    # ``pad`` bytes of hex that do not compress, so that sizes measure what was stored.
    filler = os.urandom(pad // 2).hex()
    return [
        NewEvent(kind, f'{{"n":{i},"pad":"{filler}"}}'.encode(), 1, b"{}", tags=tags)
        for i in range(n)
    ]


async def _whole_log(store: Engine, page: int = 7) -> list[RecordedEvent]:
    """The log read in pages (so that reads start after erased positions too)."""
    found: list[RecordedEvent] = []
    after = START
    while batch := await store.read_all(after=after, limit=page):
        found.extend(batch)
        after = batch[-1].position
    return found


def _ids(events: list[RecordedEvent]) -> list[str]:
    return [e.event_id for e in events]


class ErasureContract:
    """The Erasure capability, for an engine that declares it (skipped otherwise). Needs the
    ``store`` fixture: an open, empty engine."""

    @pytest.fixture(autouse=True)
    def _erasure_declared(self, request: pytest.FixtureRequest, store: Engine) -> None:
        if owned_by(ErasureContract, request) and store.capability(Erasure) is None:
            pytest.skip(f"the {store.name} engine has no erasure capability")

    @pytest.fixture
    def eraser(self, store: Engine) -> Eraser:
        return store.require(Erasure)

    async def test_erased_events_leave_the_stream_and_the_log_and_appends_go_on(
        self, store: Engine, eraser: Eraser
    ) -> None:
        for n in range(5):  # interleaved with another stream's, so the log has holes after
            await store.append("a-1", _events(1, "A"), n)
            await store.append("b-1", _events(1, "B"), n)
        before = await store.read_all()
        assert await eraser.erase_events("a-1", 4) == 3
        kept = [e for e in before if not (e.stream_id == "a-1" and e.version < 4)]
        assert [e.version for e in await store.read_stream("a-1")] == [4, 5]
        assert [e.version for e in await store.read_stream("a-1", to_version=4)] == [4]
        backwards = await store.read_stream("a-1", backwards=True, limit=5)
        assert [e.version for e in backwards] == [5, 4]
        assert await store.read_stream("b-1") == [e for e in before if e.stream_id == "b-1"]
        assert _ids(await store.read_all()) == _ids(kept)
        assert [e.position for e in await _whole_log(store, 1)] == [e.position for e in kept]
        after_erased = await store.read_all(after=before[0].position, limit=2)
        assert _ids(after_erased) == _ids(kept[:2])  # kept[0] is b-1's first, after a-1's
        assert _ids(await store.read_all(categories=["a"])) == _ids(
            [e for e in kept if e.stream_id == "a-1"]
        )
        assert _ids(await store.read_all(types=["B"])) == _ids([e for e in before if e.type == "B"])
        assert await store.stream_version("a-1") == 5
        assert await store.head() == before[-1].position
        appended = await store.append("a-1", _events(1, "A"), 5)
        assert appended.version == 6
        assert appended.events[0].position > before[-1].position
        assert [e.version for e in await store.read_stream("a-1")] == [4, 5, 6]
        assert _ids(await store.read_all()) == [*_ids(kept), *_ids(list(appended.events))]

    async def test_many_streams_are_erased_in_one_call_all_or_nothing(
        self, store: Engine, eraser: Eraser
    ) -> None:
        for stream in ("a-1", "b-1", "c-1"):
            await store.append(stream, _events(4))
        assert await eraser.erase_many([("a-1", 3), ("b-1", 4), ("c-1", 1)]) == 2 + 3
        assert [e.version for e in await store.read_stream("a-1")] == [3, 4]
        assert [e.version for e in await store.read_stream("b-1")] == [4]
        before = await store.read_all()
        with pytest.raises(ValueError, match="b-1"):  # c-1 comes first, and is kept too
            await eraser.erase_many([("c-1", 4), ("b-1", 9)])
        assert await store.read_all() == before
        assert await eraser.erase_many([]) == 0

    async def test_an_erase_above_the_version_is_refused_and_writes_nothing(
        self, store: Engine, eraser: Eraser
    ) -> None:
        await store.append("a-1", _events(3))
        before = await store.read_all()
        for above in (4, 5, 100):  # 4 would take the last event
            with pytest.raises(ValueError, match="a-1"):
                await eraser.erase_events("a-1", above)
        with pytest.raises(ValueError, match="nobody-1"):
            await eraser.erase_events("nobody-1", 2)
        assert await eraser.erase_events("nobody-1", 1) == 0
        assert await eraser.erase_events("a-1", 1) == 0
        assert await eraser.erase_events("a-1", 0) == 0
        assert await store.read_all() == before
        assert await store.stream_version("a-1") == 3
        assert await store.stream_version("nobody-1") == 0

    async def test_an_erase_done_twice_deletes_nothing_more(
        self, store: Engine, eraser: Eraser
    ) -> None:
        await store.append("a-1", _events(4))
        assert await eraser.erase_events("a-1", 4) == 3  # up to the last event, not it
        assert await eraser.erase_events("a-1", 4) == 0
        assert await eraser.erase_events("a-1", 2) == 0  # below what is gone already
        assert [e.version for e in await store.read_stream("a-1")] == [4]
        assert await store.stream_version("a-1") == 4

    async def test_an_erased_event_is_not_found_by_its_id(
        self, store: Engine, eraser: Eraser
    ) -> None:
        first, second = (await store.append("a-1", _events(2))).events
        await eraser.erase_events("a-1", 2)
        assert await store.find_event(first.event_id) is None
        found = await store.find_event(second.event_id)
        assert found is not None
        assert found.version == 2

    async def test_tags_of_erased_events_no_longer_match_a_query(
        self, store: Engine, eraser: Eraser
    ) -> None:
        dcb = store.capability(Boundaries)
        if dcb is None:
            pytest.skip(f"the {store.name} engine has no consistency boundaries")
        await store.append("a-1", _events(2, "Tagged", "course:c1", "erased-only"))
        kept = await store.append("a-1", _events(1, "Tagged", "course:c1"))
        other = await store.append("b-1", _events(1, "Tagged", "course:c1"))
        assert await eraser.erase_events("a-1", 3) == 2
        read = await dcb.read(Query.of(tags=["course:c1"]))
        assert _ids(read.events) == _ids([*kept.events, *other.events])
        assert (await dcb.read(Query.of(tags=["erased-only"]))).events == []
        # A condition on a tag only erased events had holds (the tag index forgot them too).
        await dcb.append(
            _events(1, "Claimed", "claim:1"), AppendCondition(Query.of(tags=["erased-only"]))
        )

    async def test_snapshots_below_a_version_are_erased_and_the_rest_kept(
        self, store: Engine, eraser: Eraser
    ) -> None:
        snapshots = store.capability(Snapshots)
        if snapshots is None:
            pytest.skip(f"the {store.name} engine has no snapshots")
        for stream, version in (("a-1", 1), ("a-1", 2), ("a-1", 3), ("a-1", 5), ("b-1", 1)):
            await snapshots.save_snapshot(Snapshot(stream, version, 1, b"{}", time.time()))
        assert await eraser.delete_snapshots("a-1", 3) == 2
        latest = await snapshots.load_snapshot("a-1")
        assert latest is not None
        assert latest.version == 5
        at = await snapshots.load_snapshot("a-1", max_version=4)
        assert at is not None
        assert at.version == 3  # the one at the version is kept
        assert await snapshots.load_snapshot("a-1", max_version=2) is None
        assert await eraser.delete_snapshots("a-1", 3) == 0
        assert await eraser.delete_snapshots("a-1") == 2  # None: every one
        assert await snapshots.load_snapshot("a-1") is None
        assert await snapshots.load_snapshot("b-1") is not None
        assert await eraser.delete_snapshots("nobody-1") == 0

    async def test_the_log_size_falls_by_the_erased_events(
        self, store: Engine, eraser: Eraser
    ) -> None:
        await store.append("a-1", _events(10, pad=512))
        await store.append("b-1", _events(1))
        size = await eraser.log_size()
        assert size.events == 11
        assert size.table_bytes > 0
        assert size.index_bytes >= 0
        assert size.total_bytes >= size.table_bytes + size.index_bytes
        assert await eraser.erase_events("a-1", 10) == 9
        after = await eraser.log_size()
        assert after.events == 2
        assert min(after.table_bytes, after.total_bytes) > 0

    async def test_a_compaction_after_an_erase_gives_space_back_and_reads_go_on(
        self, store: Engine, eraser: Eraser
    ) -> None:
        await store.append("a-1", _events(200, pad=2048))
        await store.append("b-1", _events(1, "B", "t"))
        before = await eraser.log_size()
        assert await eraser.erase_events("a-1", 200) == 199
        await eraser.compact()
        compacted = await eraser.log_size()
        assert compacted.events == 2
        assert compacted.total_bytes < before.total_bytes
        assert [e.version for e in await store.read_stream("a-1")] == [200]
        assert [(e.stream_id, e.version) for e in await store.read_all()] == [
            ("a-1", 200),
            ("b-1", 1),
        ]
        await store.append("a-1", _events(1), 200)
        assert len(await _whole_log(store)) == 3
        await eraser.compact()  # again, with nothing erased since
        assert await store.stream_version("a-1") == 201

    async def test_an_erase_racing_appends_and_a_reader_loses_none_of_their_events(
        self, store: Engine, eraser: Eraser
    ) -> None:
        """The log read whole after erases that raced appends to other streams, and while
        they did, holds every event that was not erased, once each and in order."""
        await store.append("target-1", _events(21))
        appended: list[RecordedEvent] = []

        async def append(n: int) -> None:
            result = await store.append(f"other-{n}", _events(1, "Other"))
            appended.extend(result.events)

        async def erase() -> None:
            for version in range(2, 22):
                assert await eraser.erase_events("target-1", version) == 1
                await asyncio.sleep(0)

        seen: list[RecordedEvent] = []

        async def read() -> None:  # follows the log as it grows, erases under its feet
            after = START
            while sum(e.stream_id != "target-1" for e in seen) < 200:
                page = await store.read_all(after=after, limit=16)
                seen.extend(page)
                after = page[-1].position if page else after
                await asyncio.sleep(0 if page else 0.001)

        reader = asyncio.create_task(read())
        await asyncio.gather(erase(), *(append(n) for n in range(200)))
        async with asyncio.timeout(30):
            await reader
        log = await _whole_log(store, page=50)
        [last] = await store.read_stream("target-1")
        expected = {e.event_id for e in appended} | {last.event_id}
        assert last.version == 21
        assert len(log) == len(expected) == 201
        assert set(_ids(log)) == expected
        assert all(a.position < b.position for a, b in itertools.pairwise(log))
        # The reader saw each event once, in order, and every one that was never erased.
        assert all(a.position < b.position for a, b in itertools.pairwise(seen))
        assert {e.event_id for e in seen if e.stream_id != "target-1"} == {
            e.event_id for e in appended
        }
        assert await store.stream_version("target-1") == 21
