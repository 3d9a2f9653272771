"""The event store contract and its optional capabilities, as tests an engine runs.

Methods of the contract classes; see :mod:`facta.testing.conformance` for how an engine's
test module uses them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from facta.errors import DuplicateEventId, InvalidStreamId, WrongExpectedVersion
from facta.store.base import (
    ANY,
    NO_STREAM,
    START,
    STREAM_EXISTS,
    Hook,
    NewEvent,
    Position,
    RecordedEvent,
    Snapshot,
)
from facta.store.engine import Engine, InlineTransactions, Snapshots


def new(n: int, kind: str = "Happened", **meta: str) -> list[NewEvent]:
    metadata = ("{" + ",".join(f'"{k}":"{v}"' for k, v in meta.items()) + "}").encode()
    return [NewEvent(kind, f'{{"n":{i}}}'.encode(), 1, metadata) for i in range(n)]


class BatchHook:
    """A transaction hook that takes batches, refusing any batch with stream b-13 in it."""

    takes_batches = True
    runs_in_place = False

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def __call__(self, tx: object, events: Sequence[RecordedEvent]) -> None:
        self.calls.append([e.stream_id for e in events])
        if any(e.stream_id == "b-13" for e in events):
            raise RuntimeError("b-13 refused")


def owned_by(contract: type, request: pytest.FixtureRequest) -> bool:
    """Whether the test ``request`` runs is one of ``contract``'s own: a class's autouse
    fixture also runs for the tests of the other contracts an engine's test class combines
    with it, and must skip only its own."""
    return request.function.__name__ in vars(contract)


async def _within(task: asyncio.Task[None], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await task


class EventStoreContract:
    """What every engine's event store does (DESIGN.md, storage contracts 1-4): optimistic
    concurrency, atomic appends, idempotent retries, ordered and gap-safe reads, live
    subscriptions. Needs a ``store`` fixture: an open, empty engine."""

    async def test_append_to_a_new_stream_numbers_versions_from_one(self, store: Engine) -> None:
        result = await store.append("order-1", new(3), NO_STREAM)
        assert result.version == 3
        assert [e.version for e in result.events] == [1, 2, 3]
        positions = [e.position for e in result.events]
        assert positions == sorted(positions)
        assert len(set(positions)) == 3
        assert result.position == positions[-1]
        assert await store.stream_version("order-1") == 3
        assert await store.read_stream("order-1") == list(result.events)

    async def test_recorded_event_keeps_everything_that_was_appended(self, store: Engine) -> None:
        before = time.time()
        event = NewEvent("Shipped", b'{"to":"Oslo"}', 3, b'{"correlation_id":"c-1"}')
        [recorded] = (await store.append("order-7", [event])).events
        assert recorded.event_id == event.event_id
        assert recorded.stream_id == "order-7"
        assert recorded.category == "order"
        assert (recorded.type, recorded.schema_version, recorded.data) == (
            "Shipped",
            3,
            b'{"to":"Oslo"}',
        )
        assert recorded.meta == {"correlation_id": "c-1"}
        assert before - 1 <= recorded.recorded_at <= time.time() + 1
        assert await store.find_event(event.event_id) == recorded
        assert await store.find_event("00000000-0000-0000-0000-000000000000") is None

    @pytest.mark.parametrize("count", [1, 2])  # one event at a known version has a path of its own
    @pytest.mark.parametrize(
        ("setup", "expected", "actual"),
        [
            (0, 1, 0),
            (2, 1, 2),
            (2, 3, 2),
            (2, NO_STREAM, 2),
            (0, STREAM_EXISTS, 0),
        ],
    )
    async def test_wrong_expected_version_writes_nothing(
        self, store: Engine, setup: int, expected: Any, actual: int, count: int
    ) -> None:
        if setup:
            await store.append("acct-1", new(setup), NO_STREAM)
        with pytest.raises(WrongExpectedVersion) as caught:
            await store.append("acct-1", new(count), expected)
        assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (
            "acct-1",
            expected,
            actual,
        )
        assert "acct-1" in str(caught.value)
        assert await store.stream_version("acct-1") == setup
        # The whole log, not head() against head(): on PostgreSQL the head is the last event
        # every transaction of the cluster lets readers see, and other tests' open
        # transactions move it; a read of the log waits for what is held back.
        assert [(e.stream_id, e.version) for e in await store.read_all()] == [
            ("acct-1", v) for v in range(1, setup + 1)
        ]

    async def test_expected_versions_that_match_append(self, store: Engine) -> None:
        await store.append("a-1", new(1), NO_STREAM)
        await store.append("a-1", new(1), 1)
        await store.append("a-1", new(1), STREAM_EXISTS)
        await store.append("a-1", new(1), ANY)
        await store.append("a-2", new(1), ANY)
        await store.append("a-3", new(1), 0)
        assert [await store.stream_version(s) for s in ("a-1", "a-2", "a-3")] == [4, 1, 1]

    async def test_an_append_is_atomic(self, store: Engine) -> None:
        await store.append("x-1", new(1), NO_STREAM)
        events = new(3)
        duplicate = NewEvent("Happened", b"{}", event_id=events[0].event_id)
        with pytest.raises(DuplicateEventId):
            await store.append("x-1", [*events, duplicate], 1)
        assert await store.stream_version("x-1") == 1
        assert len(await store.read_all()) == 1

    async def test_reappending_the_same_event_ids_is_a_no_op_returning_the_first_result(
        self,
        store: Engine,
    ) -> None:
        events = new(2)
        first = await store.append("pay-1", events, NO_STREAM)
        again = await store.append("pay-1", events, NO_STREAM)  # even with a now-wrong expectation
        assert again == first
        assert await store.stream_version("pay-1") == 2
        assert len(await store.read_all()) == 2

    async def test_a_repeat_is_recognised_whatever_the_expected_version_and_later_appends(
        self,
        store: Engine,
    ) -> None:
        events = new(2)
        first = await store.append("pay-1", events, NO_STREAM)
        later = await store.append("pay-1", new(1), 2)
        assert await store.append("pay-1", events) == first  # ANY: the version check passes
        assert await store.append("pay-1", events, 2) == first
        assert await store.append("pay-1", events, STREAM_EXISTS) == first
        assert await store.stream_version("pay-1") == later.version == 3
        assert len(await store.read_all()) == 3

    async def test_a_stored_id_after_the_first_event_is_refused_and_writes_nothing(
        self,
        store: Engine,
    ) -> None:
        stored = new(1)
        await store.append("pay-1", stored)
        with pytest.raises(DuplicateEventId):
            await store.append("pay-1", [*new(1), *stored])
        assert await store.stream_version("pay-1") == 1

    async def test_an_event_id_from_another_stream_is_refused(self, store: Engine) -> None:
        events = new(1)
        await store.append("pay-1", events)
        with pytest.raises(DuplicateEventId) as caught:
            await store.append("pay-2", events)
        assert events[0].event_id in str(caught.value)
        assert await store.stream_version("pay-2") == 0

    async def test_an_empty_append_checks_the_version_and_writes_nothing(
        self, store: Engine
    ) -> None:
        result = await store.append("e-1", [], NO_STREAM)
        assert (result.version, result.events) == (0, ())
        with pytest.raises(WrongExpectedVersion):
            await store.append("e-1", [], STREAM_EXISTS)

    @pytest.mark.parametrize(
        "bad", ["", "has space", "x" * 301, "semi;colon", "quote'd", "ünïcode"]
    )
    async def test_invalid_stream_ids_are_refused(self, store: Engine, bad: str) -> None:
        with pytest.raises(InvalidStreamId):
            await store.append(bad, new(1))
        assert await store.read_all() == []

    async def test_read_stream_ranges_directions_and_limits(self, store: Engine) -> None:
        await store.append("s-1", new(10), NO_STREAM)
        await store.append("s-2", new(2), NO_STREAM)

        def versions(events: Sequence[RecordedEvent]) -> list[int]:
            return [e.version for e in events]

        assert versions(await store.read_stream("s-1", from_version=4, to_version=6)) == [4, 5, 6]
        assert versions(await store.read_stream("s-1", limit=3)) == [1, 2, 3]
        assert versions(await store.read_stream("s-1", backwards=True, limit=3)) == [10, 9, 8]
        assert versions(await store.read_stream("s-1", to_version=5, backwards=True, limit=2)) == [
            5,
            4,
        ]
        assert versions(await store.read_stream("s-1", from_version=11)) == []
        assert await store.read_stream("nothing-here") == []
        assert {e.stream_id for e in await store.read_stream("s-2")} == {"s-2"}

    async def test_read_all_pages_in_order_and_filters(self, store: Engine) -> None:
        await store.append("order-1", new(3, "Placed"))
        await store.append("user-1", new(2, "Registered"))
        await store.append("order-2", new(1, "Shipped"))
        everything = await store.read_all()
        assert [e.stream_id for e in everything] == ["order-1"] * 3 + ["user-1"] * 2 + ["order-2"]
        assert [e.position for e in everything] == sorted(e.position for e in everything)
        assert await store.head() == everything[-1].position

        first, second = (
            await store.read_all(limit=4),
            await store.read_all(after=everything[3].position),
        )
        assert first + second == everything

        orders = await store.read_all(categories=["order"])
        assert [e.stream_id for e in orders] == ["order-1"] * 3 + ["order-2"]
        shipped = await store.read_all(types=["Shipped", "Registered"])
        assert [e.type for e in shipped] == ["Registered", "Registered", "Shipped"]
        both = await store.read_all(categories=["order"], types=["Shipped"], limit=5)
        assert [e.stream_id for e in both] == ["order-2"]
        assert await store.read_all(after=everything[-1].position) == []
        # A follower's read (no wait for held-back events) sees the same when nothing is held.
        assert await store.read_all(wait_for_held_back=False) == everything
        assert await store.read_all(types=["Shipped"], wait_for_held_back=False) == everything[-1:]

    async def test_an_empty_store(self, store: Engine) -> None:
        assert await store.head() == START
        assert await store.read_all() == []
        assert await store.stream_version("none-1") == 0

    async def test_subscribe_catches_up_then_follows_live(self, store: Engine) -> None:
        await store.append("live-1", new(3))
        seen: list[RecordedEvent] = []

        async def consume() -> None:
            async for event in store.subscribe(batch_size=2):
                seen.append(event)
                if len(seen) == 6:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        await store.append("live-1", new(2))
        await store.append("live-2", new(1))
        await _within(task, 10)
        assert [(e.stream_id, e.version) for e in seen] == [("live-1", v) for v in range(1, 6)] + [
            ("live-2", 1)
        ]

    async def test_subscribe_from_a_position_with_filters(self, store: Engine) -> None:
        first = await store.append("order-1", new(2))
        await store.append("user-1", new(3))
        seen: list[RecordedEvent] = []

        async def consume() -> None:
            async for event in store.subscribe(
                after=first.events[0].position, categories=["order"]
            ):
                seen.append(event)
                if len(seen) == 2:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        await store.append("user-2", new(1))
        await store.append("order-3", new(1))
        await _within(task, 10)
        assert [(e.stream_id, e.version) for e in seen] == [("order-1", 2), ("order-3", 1)]

    async def test_appends_written_together_each_check_their_own_version(
        self, store: Engine
    ) -> None:
        for n in range(6):
            await store.append(f"acct-{n}", new(2), NO_STREAM)

        async def attempt(n: int, expected: int) -> int | tuple[int, int]:
            try:
                return (await store.append(f"acct-{n}", new(1), expected)).version
            except WrongExpectedVersion as refused:
                return refused.expected, refused.actual

        # Behind, right and ahead of each stream, all at once: a store that writes them together
        # must still refuse the wrong ones alone.
        outcomes = await asyncio.gather(*(attempt(n, (1, 2, 3)[n % 3]) for n in range(6)))
        assert outcomes == [(1, 2), 3, (3, 2), (1, 2), 3, (3, 2)]
        assert [await store.stream_version(f"acct-{n}") for n in range(6)] == [2, 3, 2, 2, 3, 2]
        assert len(await store.read_all()) == 14

    async def test_concurrent_writers_to_one_stream_one_wins_each_version(
        self, store: Engine
    ) -> None:
        async def attempt(expected: int) -> bool:
            try:
                await store.append("hot-1", new(1), expected)
                return True
            except WrongExpectedVersion:
                return False

        for version in range(5):
            outcomes = await asyncio.gather(*(attempt(version) for _ in range(20)))
            assert outcomes.count(True) == 1
        events = await store.read_stream("hot-1")
        assert [e.version for e in events] == [1, 2, 3, 4, 5]

    async def test_a_subscriber_sees_a_concurrent_burst_exactly_once_in_order(
        self,
        store: Engine,
    ) -> None:
        writers, per_writer = 16, 25
        total = writers * per_writer
        seen: list[RecordedEvent] = []

        async def consume() -> None:
            async for event in store.subscribe(batch_size=37):
                seen.append(event)
                if len(seen) == total:
                    return

        async def write(w: int) -> None:
            for i in range(per_writer):
                await store.append(f"burst-{w}", new(1), i)

        consumer = asyncio.create_task(consume())
        await asyncio.gather(*(write(w) for w in range(writers)))
        await _within(consumer, 30)
        assert len({e.event_id for e in seen}) == total
        assert [e.position for e in seen] == sorted(e.position for e in seen)
        assert seen == await store.read_all(limit=total + 1)
        for w in range(writers):
            assert [e.version for e in seen if e.stream_id == f"burst-{w}"] == list(range(1, 26))

    def test_positions_order_as_pairs_and_round_trip_as_text(self) -> None:
        assert Position(0, 9) < Position(0, 10) < Position(1, 0)
        for position in (Position(0, 0), Position(0, 42), Position(7, 3)):
            assert Position.parse(str(position)) == position
        for bad in ("", "x", "1:", ":1", "-1", "1:2:3"):
            with pytest.raises(ValueError, match="not a log position"):
                Position.parse(bad)

    async def test_a_negative_expected_version_is_refused_and_writes_nothing(
        self, store: Engine
    ) -> None:
        with pytest.raises(ValueError, match="0 or more"):
            await store.append("neg-1", new(1), -1)
        assert await store.stream_version("neg-1") == 0
        assert await store.read_all() == []


class SnapshotContract:
    """The Snapshots capability, for an engine that declares it (skipped otherwise)."""

    @pytest.fixture(autouse=True)
    def _snapshots_declared(self, request: pytest.FixtureRequest, store: Engine) -> None:
        if owned_by(SnapshotContract, request) and store.capability(Snapshots) is None:
            pytest.skip(f"the {store.name} engine keeps no snapshots")

    async def test_snapshots_are_found_at_or_below_a_version_and_time(self, store: Engine) -> None:
        assert await store.load_snapshot("acc-1") is None
        for version, at in [(10, 100.0), (20, 200.0), (30, 300.0)]:
            await store.save_snapshot(Snapshot("acc-1", version, 1, b'{"v":%d}' % version, at))
        latest = await store.load_snapshot("acc-1")
        assert latest is not None
        assert (latest.version, latest.data) == (30, b'{"v":30}')
        below = await store.load_snapshot("acc-1", max_version=25)
        assert below is not None
        assert below.version == 20
        earlier = await store.load_snapshot("acc-1", max_recorded_at=150.0)
        assert earlier is not None
        assert earlier.version == 10
        assert await store.load_snapshot("acc-1", max_version=5) is None
        await store.save_snapshot(Snapshot("acc-1", 30, 2, b"{}", 300.0))  # replaces
        replaced = await store.load_snapshot("acc-1")
        assert replaced is not None
        assert replaced.schema_version == 2


class InlineTransactionContract:
    """The InlineTransactions capability, for an engine that declares it (skipped
    otherwise): hooks run inside the append's transaction and roll it back by raising."""

    @pytest.fixture(autouse=True)
    def _inline_declared(self, request: pytest.FixtureRequest, store: Engine) -> None:
        if owned_by(InlineTransactionContract, request) and (
            store.capability(InlineTransactions) is None
        ):
            pytest.skip(f"the {store.name} engine runs no hooks in its transactions")

    async def test_a_transaction_hook_commits_with_the_append(self, store: Engine) -> None:
        calls: list[list[int]] = []

        async def hook(tx: object, events: Sequence[RecordedEvent]) -> None:
            calls.append([e.version for e in events])

        await store.append("h-1", new(2), hook=Hook(hook))
        assert calls == [[1, 2]]

    async def test_a_failing_transaction_hook_rolls_the_append_back(self, store: Engine) -> None:
        async def hook(tx: object, events: Sequence[RecordedEvent]) -> None:
            raise RuntimeError("projection broke")

        await store.append("h-1", new(1))
        with pytest.raises(RuntimeError, match="projection broke"):
            await store.append("h-1", new(2), 1, hook=Hook(hook))
        assert await store.stream_version("h-1") == 1
        # the store is still usable afterwards, and the same append succeeds without the hook
        await store.append("h-1", new(2), 1)
        assert await store.stream_version("h-1") == 3

    async def test_a_bare_function_is_refused_as_a_hook_and_nothing_is_written(
        self,
        store: Engine,
    ) -> None:
        async def hook(tx: object, events: Sequence[RecordedEvent]) -> None:
            pass

        with pytest.raises(TypeError, match="wrap a function in Hook"):
            await store.append("h-1", new(1), hook=hook)  # type: ignore[arg-type]
        assert await store.stream_version("h-1") == 0

    async def test_a_hook_that_takes_batches_fails_only_the_append_that_broke_it(
        self,
        store: Engine,
    ) -> None:
        hook = BatchHook()
        results = await asyncio.gather(
            *(store.append(f"b-{i}", new(2), NO_STREAM, hook=hook) for i in range(32)),
            return_exceptions=True,
        )
        failed = {i: r for i, r in enumerate(results) if isinstance(r, BaseException)}
        assert list(failed) == [13]
        assert isinstance(failed[13], RuntimeError)
        assert await store.stream_version("b-13") == 0
        stored = await store.read_all(limit=100)
        assert len(stored) == 62
        assert {e.stream_id for e in stored} == {f"b-{i}" for i in range(32) if i != 13}
