"""Policies on every backend: a command the target refuses is an outcome the policy handles,
and a handler that raises (a bug) is retried, then its one event parked while the policy
goes on; the operator sees the parked event in the status."""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar

import pytest

from facta import (
    Aggregate,
    Application,
    Command,
    DomainError,
    Event,
    EventEnvelope,
    EventStore,
    StoreUnavailable,
)
from facta.projections import CommandRefused, Policy, PolicyContext, ProjectionRunner, ReadStore
from facta.store.memory import MemoryEngine
from tests.projections.helpers import eventually


class Aim(Event, frozen=True):
    target: str


class Mark(Command, frozen=True):
    pass


class Marked(Event, frozen=True):
    pass


class AlreadyMarked(DomainError):
    pass


class Target(Aggregate[int, Mark, Marked]):
    name = "target"
    initial = 0

    def decide(self, state: int, command: Mark) -> list[Marked]:
        if state:
            raise AlreadyMarked("marked already")
        return [Marked()]

    def evolve(self, state: int, event: Marked) -> int:
        return state + 1


target = Target()


class Marker(Policy):
    """Marks the target each Aim names, noting refusals; an Aim at ``bug`` makes it raise."""

    name = "marker"
    event_types = (Aim,)
    refused: ClassVar[list[tuple[str, str, str, str]]] = []
    attempts: ClassVar[dict[str, int]] = {}

    async def handle(self, envelope: EventEnvelope[Event], context: PolicyContext) -> None:
        assert isinstance(envelope.event, Aim)
        aimed = envelope.event.target
        Marker.attempts[aimed] = Marker.attempts.get(aimed, 0) + 1
        if aimed == "bug":
            raise RuntimeError("a bug in the policy")
        try:
            await context.execute(target, aimed, Mark())
        except CommandRefused as exc:
            refusal = (exc.entity_id, exc.aggregate, type(exc.error).__name__, str(exc))
            Marker.refused.append(refusal)


class Unlucky(Marker):
    """Meets an outage at its first ``outage`` attempts on target ``c``."""

    name = "unlucky"
    outage: ClassVar[int] = 0

    async def handle(self, envelope: EventEnvelope[Event], context: PolicyContext) -> None:
        assert isinstance(envelope.event, Aim)
        if envelope.event.target == "c" and Unlucky.outage > 0:
            Unlucky.outage -= 1
            raise StoreUnavailable("the database is restarting")
        await super().handle(envelope, context)


class StoppingMarker(Marker):
    name = "stopping_marker"
    on_error = "stop"
    retries = 0


async def aim(app: Application, *targets: str) -> None:
    for n, aimed in enumerate(targets):
        await app.store.append(f"aim-{n}", [app.codec.encode(Aim(aimed))])


async def test_refused_commands_reach_the_policy_as_one_error_and_a_bug_parks_its_event(
    store: EventStore,
) -> None:
    Marker.refused, Marker.attempts = [], {}
    app = Application(store)
    await aim(app, "a", "a", "bad id", "x" * 300, "bug", "b")
    runner = ProjectionRunner(store, [Marker()], app=app, batch_size=100)
    await runner.catch_up()
    await runner.catch_up()  # past the parked event (and the commands' own events)
    await runner.close()

    # (The retries before the parking handled the events before it again: the same refusals.)
    refusals = {(entity, aggregate, kind) for entity, aggregate, kind, _ in Marker.refused}
    assert refusals == {
        ("a", "target", "AlreadyMarked"),
        ("bad id", "target", "InvalidStreamId"),
        ("x" * 300, "target", "InvalidStreamId"),
    }
    messages = {entity: text for entity, _, _, text in Marker.refused}
    assert messages["a"] == "marked already"
    assert "must be 1-300 characters" in messages["bad id"]
    assert Marker.attempts["bug"] == 1 + Marker.retries  # retried, then parked
    assert await store.stream_version("target-a") == 1
    assert await store.stream_version("target-b") == 1  # the policy went on after the bug

    read_store = ReadStore(store)
    [status] = await read_store.status("marker")
    assert (status.state, status.error, status.parked) == ("stopped", None, 1)
    assert status.position == await store.head()
    [letter] = await read_store.dead_letters("marker")
    assert (letter.stream_id, letter.type, letter.error) == (
        "aim-4",
        "Aim",
        "RuntimeError: a bug in the policy",
    )
    assert await read_store.clear_dead_letters("marker", ["not-an-event"]) == 0
    assert await read_store.clear_dead_letters("marker", [letter.event_id]) == 1
    assert [s.parked for s in await read_store.status("marker")] == [0]
    await read_store.close()


async def test_a_policy_set_to_stop_still_stops_where_its_handler_raises() -> None:
    Marker.refused, Marker.attempts = [], {}
    store = MemoryEngine()
    app = Application(store)
    await aim(app, "bad id", "bug", "b")
    runner = ProjectionRunner(store, [StoppingMarker()], app=app)
    await runner.catch_up()
    await runner.close()
    assert Marker.attempts == {"bad id": 2, "bug": 1}  # the one before it, handled again
    assert await store.stream_version("target-b") == 0
    read_store = ReadStore(store)
    [status] = await read_store.status("stopping_marker")
    assert (status.state, status.error) == ("failed", "RuntimeError: a bug in the policy")
    await read_store.close()


def test_retries_are_bounded() -> None:
    class Eager(Marker):
        name = "eager"
        retries = 11

    with pytest.raises(ValueError, match="retries must be 0 to 10"):
        ProjectionRunner(MemoryEngine(), [Eager()], app=Application(MemoryEngine()))


async def test_an_outage_outlasting_the_retries_is_waited_out_never_parked(
    store: EventStore,
) -> None:
    Marker.refused, Marker.attempts = [], {}
    Unlucky.outage = 2 * (1 + Unlucky.retries)  # twice what one batch's retries cover
    app = Application(store)
    await aim(app, "b", "c", "d")
    runner = ProjectionRunner(store, [Unlucky()], app=app)
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: _version(store, "target-d"), seconds=30)
        assert Unlucky.outage == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.close()
    assert [await store.stream_version(f"target-{t}") for t in "bcd"] == [1, 1, 1]
    read_store = ReadStore(store)
    [status] = await read_store.status("unlucky")
    assert (status.error, status.parked) == (None, 0)
    await read_store.close()


async def _version(store: EventStore, stream: str) -> bool:
    return await store.stream_version(stream) == 1
