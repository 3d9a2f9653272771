"""Dynamic consistency boundaries (storage contract 7), as tests an engine runs: tags kept and
returned, the query matrix, the condition matrix, racers on one tag and on disjoint tags."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from facta.errors import AppendConditionFailed
from facta.store.base import NewEvent, Position, RecordedEvent
from facta.store.boundaries import (
    AppendCondition,
    BoundaryStore,
    Query,
    QueryItem,
)
from facta.store.engine import Boundaries, Engine
from facta.testing.conformance.events import owned_by


def tagged(kind: str, *tags: str, n: int = 0) -> NewEvent:
    """An event of type ``kind`` carrying ``tags``."""
    return NewEvent(kind, b'{"n":%d}' % n, 1, b"{}", tags=tags)


# The events the query matrix reads: (type, tags) for every combination that tells the
# rules apart (one tag, several, none, a type with and without the tags).
_LOG = [
    ("CourseDefined", ("course:c1",)),
    ("CourseDefined", ("course:c2",)),
    ("StudentSubscribed", ("course:c1", "student:s1")),
    ("StudentSubscribed", ("course:c2", "student:s1")),
    ("StudentSubscribed", ("course:c1", "student:s2")),
    ("CapacityChanged", ("course:c1",)),
    ("Untagged", ()),
    ("StudentRenamed", ("student:s1",)),
]

_QUERIES = [
    Query.all(),
    Query.of(types=["CourseDefined"]),
    Query.of(types=["CourseDefined", "CapacityChanged"]),
    Query.of(tags=["course:c1"]),
    Query.of(tags=["course:c1", "student:s1"]),
    Query.of(types=["StudentSubscribed"], tags=["student:s1"]),
    Query.of(types=["Untagged"]),
    Query.of(tags=["nobody"]),
    Query.of(types=["Nothing"]),
    Query((QueryItem(("CourseDefined",), ("course:c2",)), QueryItem(tags=("student:s2",)))),
    Query((QueryItem(tags=("course:c1",)), QueryItem(types=("Untagged",)))),
    Query((QueryItem(tags=("student:s1",)), QueryItem(tags=("course:c1", "student:s1")))),
]


class BoundaryContract:
    """The Boundaries capability, for an engine that declares it (skipped otherwise). Needs
    the ``store`` fixture: an open, empty engine."""

    @pytest.fixture(autouse=True)
    def _boundaries_declared(self, request: pytest.FixtureRequest, store: Engine) -> None:
        if owned_by(BoundaryContract, request) and store.capability(Boundaries) is None:
            pytest.skip(f"the {store.name} engine has no consistency boundaries")

    @pytest.fixture
    def dcb(self, store: Engine) -> BoundaryStore:
        return store.require(Boundaries)

    async def _log(self, dcb: BoundaryStore) -> list[RecordedEvent]:
        recorded: list[RecordedEvent] = []
        for n, (kind, tags) in enumerate(_LOG):
            result = await dcb.append([tagged(kind, *tags, n=n)])
            recorded.extend(result.events)
        return recorded

    async def test_tags_are_stored_and_returned_on_every_read(
        self, store: Engine, dcb: BoundaryStore
    ) -> None:
        result = await dcb.append([tagged("A", "z", "b", "b"), tagged("B")], stream_id="t-1")
        first, second = result.events
        assert (first.tags, second.tags) == (("b", "z"), ())  # sorted, each once
        assert result.stream_id == "t-1"
        assert [e.tags for e in await store.read_stream("t-1")] == [("b", "z"), ()]
        assert [e.tags for e in await store.read_all()] == [("b", "z"), ()]
        found = await store.find_event(first.event_id)
        assert found is not None
        assert found.tags == ("b", "z")
        plain = await store.append("plain-1", [tagged("C", "x")])  # plain appends keep tags too
        assert plain.events[0].tags == ("x",)
        assert [e.event_id for e in (await dcb.read(Query.of(tags=["x"]))).events] == [
            plain.events[0].event_id
        ]

    @pytest.mark.parametrize("query", _QUERIES, ids=lambda q: repr(q.items)[:80])
    async def test_a_query_reads_what_its_items_match_in_log_order(
        self, dcb: BoundaryStore, query: Query
    ) -> None:
        recorded = await self._log(dcb)
        expected = [e for e in recorded if query.matches(e.type, e.tags)]
        read = await dcb.read(query)
        assert [e.event_id for e in read.events] == [e.event_id for e in expected]
        assert read.after == (expected[-1].position if expected else None)
        if len(expected) >= 2:  # paged: after the first, up to a limit
            page = await dcb.read(query, after=expected[0].position, limit=1)
            assert [e.event_id for e in page.events] == [expected[1].event_id]
            assert page.after == expected[1].position

    async def test_query_items_are_validated(self) -> None:
        with pytest.raises(ValueError, match="at least one item"):
            Query(())
        for bad in ["", "x" * 201, "a\x1fb", "new\nline"]:
            with pytest.raises(ValueError, match="a tag must"):
                QueryItem(tags=(bad,))
        with pytest.raises(TypeError):
            QueryItem(tags="course:c1")  # type: ignore[arg-type]

    async def test_bad_tags_are_refused_and_nothing_is_written(
        self, store: Engine, dcb: BoundaryStore
    ) -> None:
        for bad in ["", "x" * 201, "a\x1fb"]:
            with pytest.raises(ValueError, match="a tag must"):
                await dcb.append([tagged("A", "ok"), tagged("B", bad)])
        assert await store.read_all() == []

    async def test_a_condition_with_no_position_makes_the_append_unique(
        self, store: Engine, dcb: BoundaryStore
    ) -> None:
        claim = Query.of(types=["NameClaimed"], tags=["name:ada"])
        first = await dcb.append([tagged("NameClaimed", "name:ada")], AppendCondition(claim))
        head = await store.head()
        with pytest.raises(AppendConditionFailed) as failed:
            await dcb.append([tagged("NameClaimed", "name:ada")], AppendCondition(claim))
        assert failed.value.event_id == first.events[0].event_id
        assert await store.head() == head  # nothing written
        other = Query.of(types=["NameClaimed"], tags=["name:bob"])
        await dcb.append([tagged("NameClaimed", "name:bob")], AppendCondition(other))

    async def test_a_condition_fails_only_on_matching_events_after_its_position(
        self, store: Engine, dcb: BoundaryStore
    ) -> None:
        await self._log(dcb)
        query = Query.of(tags=["course:c1"])
        read = await dcb.read(query)
        assert read.after is not None
        condition = read.condition(query)
        # Events after the read that do not match leave the condition standing ...
        await dcb.append([tagged("CourseDefined", "course:c3")])
        await dcb.append([tagged("Untagged")])
        await dcb.append([tagged("StudentSubscribed", "course:c1x", "student:s9")])
        ok = await dcb.append([tagged("StudentSubscribed", "course:c1", "student:s3")], condition)
        # ... one that matches makes it fail, and the failed append writes nothing.
        head = await store.head()
        with pytest.raises(AppendConditionFailed) as failed:
            await dcb.append([tagged("Whatever")], condition)
        assert failed.value.event_id == ok.events[0].event_id
        assert await store.head() == head
        # A condition from before the log matches every matching event; one from its end none.
        with pytest.raises(AppendConditionFailed):
            await dcb.append([tagged("X")], AppendCondition(query, Position(0, 0)))
        again = await dcb.read(query)
        await dcb.append([tagged("X")], again.condition(query))

    @pytest.mark.parametrize(
        ("query", "fails"),
        [
            (Query.all(), True),
            (Query.of(types=["Untagged"]), True),  # untagged events of the type match
            (Query.of(types=["Other"]), False),
            (Query.of(tags=["t"]), False),
            (Query((QueryItem(tags=("t",)), QueryItem(types=("Untagged",)))), True),
        ],
    )
    async def test_conditions_without_tags_see_plain_appends(
        self, store: Engine, dcb: BoundaryStore, query: Query, fails: bool
    ) -> None:
        await dcb.append([tagged("Seed", "s")])
        condition = AppendCondition(query, await store.head())
        await store.append("account-1", [tagged("Untagged")])  # an aggregate's plain append
        if fails:
            with pytest.raises(AppendConditionFailed):
                await dcb.append([tagged("T", "t")], condition)
        else:
            await dcb.append([tagged("T", "t")], condition)

    async def test_appending_the_same_events_again_returns_the_first_result(
        self, store: Engine, dcb: BoundaryStore
    ) -> None:
        events = [tagged("NameClaimed", "name:ada"), tagged("Welcomed", "name:ada")]
        condition = AppendCondition(Query.of(tags=["name:ada"]))
        first = await dcb.append(events, condition)
        again = await dcb.append(events, condition)  # a retry: its condition fails now
        assert again.events == first.events
        assert len(await store.read_all()) == 2

    async def test_racers_on_one_tag_one_commits_on_disjoint_tags_all_do(
        self, store: Engine, dcb: BoundaryStore
    ) -> None:
        for round_ in range(5):
            shared = Query.of(tags=[f"seat:{round_}"])
            read = await dcb.read(shared)
            results = await asyncio.gather(
                *(
                    dcb.append([tagged("SeatTaken", f"seat:{round_}", n=n)], read.condition(shared))
                    for n in range(16)
                ),
                return_exceptions=True,
            )
            won = [r for r in results if not isinstance(r, BaseException)]
            lost = [r for r in results if isinstance(r, AppendConditionFailed)]
            assert (len(won), len(lost)) == (1, 15), results
            assert len((await dcb.read(shared)).events) == 1
        own = [Query.of(tags=[f"own:{n}"]) for n in range(16)]
        reads = [await dcb.read(q) for q in own]
        await asyncio.gather(
            *(
                dcb.append([tagged("Mine", f"own:{n}")], reads[n].condition(own[n]))
                for n in range(16)
            )
        )

    async def test_a_query_subscription_catches_up_then_follows(
        self, store: Engine, dcb: BoundaryStore
    ) -> None:
        await self._log(dcb)
        query = Query.of(tags=["student:s1"])
        seen: list[RecordedEvent] = []
        events: AsyncIterator[RecordedEvent] = dcb.subscribe(query, batch_size=2)

        async def take(n: int) -> None:
            async for event in events:
                seen.append(event)
                if len(seen) == n:
                    return

        async with asyncio.timeout(5):
            await take(3)
        await dcb.append([tagged("Other", "student:s2")])
        late = await dcb.append([tagged("StudentRenamed", "student:s1")])
        async with asyncio.timeout(5):
            await take(4)
        assert seen[-1].event_id == late.events[0].event_id
        assert all("student:s1" in e.tags for e in seen)
        positions = [e.position for e in seen]
        assert positions == sorted(positions)
        aclose: Any = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
