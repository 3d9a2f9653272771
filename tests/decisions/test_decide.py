"""The rules of ``Application.decide`` on every engine with consistency boundaries: a racing
append makes it decide again, a rejection writes nothing, a command id applies once,
metadata flows to the events, and an engine without the capability says so."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from facta import (
    AppendCondition,
    AppendConditionFailed,
    AppendResult,
    Application,
    Boundaries,
    BoundaryStore,
    CapabilityMissing,
    CommandIdReused,
    Engine,
    NewEvent,
    Position,
    Query,
    TaggedEvents,
    open_store,
)
from facta.examples.courses.domain import (
    CourseDefined,
    CourseError,
    DefineCourse,
    DefineCourseDecision,
    StudentSubscribedToCourse,
    SubscribeDecision,
    SubscribeStudentToCourse,
)

subscribe = SubscribeDecision()


@pytest.fixture
def boundaries(store: Engine) -> BoundaryStore:
    found = store.capability(Boundaries)
    if found is None:
        pytest.skip(f"the {store.name} engine has no consistency boundaries")
    return found


@pytest.fixture
async def app(store: Engine, boundaries: BoundaryStore) -> Application:
    application = Application(store)
    await application.decide(DefineCourseDecision(), DefineCourse("c1", 1))
    return application


async def _log(store: Engine) -> list[str]:
    return [r.type for r in await store.events.read_all()]


async def test_a_rejected_command_writes_nothing(store: Engine, app: Application) -> None:
    before = await _log(store)
    with pytest.raises(CourseError, match="does not exist"):
        await app.decide(subscribe, SubscribeStudentToCourse("nope", "s1"))
    assert await _log(store) == before


async def test_racers_for_the_last_seat_one_wins_the_other_is_rejected(
    store: Engine, app: Application
) -> None:
    outcomes = await asyncio.gather(
        *(app.decide(subscribe, SubscribeStudentToCourse("c1", f"s{i}")) for i in range(2)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], CourseError), losers
    assert (await _log(store)).count("StudentSubscribedToCourse") == 1


class _Interleaved:
    """A real boundary store whose reads let the loop run before they return, as a networked
    store's do, so that two decisions both read before either appends."""

    def __init__(self, inner: BoundaryStore) -> None:
        self.inner = inner
        self.failed = 0

    async def read(
        self, query: Query, *, after: Position | None = None, limit: int | None = None
    ) -> TaggedEvents:
        read = await self.inner.read(query, after=after, limit=limit)
        await asyncio.sleep(0.01)
        return read

    async def append(
        self,
        events: Sequence[NewEvent],
        condition: AppendCondition | None = None,
        *,
        stream_id: str | None = None,
    ) -> AppendResult:
        try:
            return await self.inner.append(events, condition, stream_id=stream_id)
        except AppendConditionFailed:
            self.failed += 1
            raise

    def subscribe(
        self, query: Query, *, after: Position | None = None, batch_size: int = 1000
    ) -> Any:
        return self.inner.subscribe(query, after=after, batch_size=batch_size)


async def _interleaved_app(max_retries: int) -> tuple[Application, _Interleaved]:
    memory = await open_store("memory://")
    slow = _Interleaved(memory.require(Boundaries))
    engine = Engine(
        "memory://",
        events=memory.events,
        read_models=memory.read_models,
        relay_checkpoints=memory.relay_checkpoints,
        capabilities={Boundaries: slow},
    )
    app = Application(engine, max_retries=max_retries)
    await app.decide(DefineCourseDecision(), DefineCourse("c1", 1))
    return app, slow


async def test_the_loser_of_a_race_decides_again_on_the_new_state() -> None:
    app, slow = await _interleaved_app(max_retries=3)
    outcomes = await asyncio.gather(
        *(app.decide(subscribe, SubscribeStudentToCourse("c1", f"s{i}")) for i in range(2)),
        return_exceptions=True,
    )
    assert slow.failed == 1  # both read an empty course; the second append found the first
    assert sorted(type(o).__name__ for o in outcomes) == ["CourseError", "DecisionResult"]
    await app.store.close()


async def test_racing_appends_that_outlast_the_retries_surface() -> None:
    app, _slow = await _interleaved_app(max_retries=0)
    outcomes = await asyncio.gather(
        *(app.decide(subscribe, SubscribeStudentToCourse("c1", f"s{i}")) for i in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == [
        "AppendConditionFailed",
        "DecisionResult",
    ]
    await app.store.close()


async def test_disjoint_decisions_do_not_conflict() -> None:
    app, slow = await _interleaved_app(max_retries=0)
    await app.decide(DefineCourseDecision(), DefineCourse("c2", 1))
    await asyncio.gather(
        app.decide(subscribe, SubscribeStudentToCourse("c1", "s1")),
        app.decide(subscribe, SubscribeStudentToCourse("c2", "s2")),
    )
    assert slow.failed == 0
    await app.store.close()


async def test_a_command_id_applies_once(store: Engine, app: Application) -> None:
    command = SubscribeStudentToCourse("c1", "s1")
    first = await app.decide(subscribe, command, command_id="k-1")
    again = await app.decide(subscribe, command, command_id="k-1")
    assert again == first
    assert first.events == (StudentSubscribedToCourse("c1", "s1"),)
    assert (await _log(store)).count("StudentSubscribedToCourse") == 1
    # A fresh Application (another process) finds it too.
    assert await Application(store).decide(subscribe, command, command_id="k-1") == first


async def test_a_command_id_for_another_command_is_refused(app: Application) -> None:
    await app.decide(subscribe, SubscribeStudentToCourse("c1", "s1"), command_id="k-2")
    with pytest.raises(CommandIdReused):
        await app.decide(subscribe, SubscribeStudentToCourse("c1", "s2"), command_id="k-2")


async def test_a_command_id_is_scoped_to_the_decision(app: Application) -> None:
    await app.decide(subscribe, SubscribeStudentToCourse("c1", "s1"), command_id="k-3")
    result = await app.decide(DefineCourseDecision(), DefineCourse("c9", 1), command_id="k-3")
    assert result.events == (CourseDefined("c9", 1),)


async def test_metadata_and_tags_reach_the_stored_events(store: Engine, app: Application) -> None:
    result = await app.decide(
        subscribe,
        SubscribeStudentToCourse("c1", "s1"),
        command_id="k-4",
        metadata={"correlation_id": "corr-1", "user": "ada"},
    )
    stored = await store.events.read_stream(result.stream_id)
    assert [r.tags for r in stored] == [("course:c1", "student:s1")]
    meta = stored[0].meta
    assert (meta["correlation_id"], meta["causation_id"], meta["user"]) == ("corr-1", "k-4", "ada")
    assert meta["command_id"] == "k-4"
    assert result.position == stored[-1].position


async def test_an_engine_without_boundaries_says_so() -> None:
    memory = await open_store("memory://")
    bare = Engine(
        "memory://",
        events=memory.events,
        read_models=memory.read_models,
        relay_checkpoints=memory.relay_checkpoints,
    )
    with pytest.raises(CapabilityMissing, match="consistency boundaries"):
        await Application(bare).decide(DefineCourseDecision(), DefineCourse("c1", 1))
    await memory.close()
