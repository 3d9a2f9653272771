"""Cancelling a task that follows the log always stops it, whenever the cancellation lands.

On Python 3.11 ``asyncio.wait_for`` returns the result when a cancellation arrives just as
what it waits for completes, and the cancellation is lost (fixed in 3.12): a subscriber or a
runner woken by an append then went on following, and ``task.cancel(); await task`` hung.
Each test appends, lets the loop turn a different number of times (and then a few real
sleeps), and cancels there: the woken waiter is then at every step of its wake-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import msgspec

from facta import Event, EventEnvelope, EventStore, NewEvent, Position
from facta.projections import Projection, ProjectionRunner, Session
from tests.projections.helpers import Tick, codec, eventually

TURNS = range(8)
"""Loop iterations between an append and the cancellation: the race sits at one to three."""

SLEEPS = (0.0005, 0.002, 0.01)
"""Real pauses after an append (a store whose wake-up comes from a thread or the server)."""

STOPS_WITHIN = 5.0
"""Seconds a cancelled task may take to end (generous: it should take milliseconds)."""


def _tick(n: int) -> list[NewEvent]:
    return [NewEvent("Tick", msgspec.json.encode({"n": n}))]


async def _pause(turns: int, sleep: float) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)
    if sleep:
        await asyncio.sleep(sleep)


async def _stops(task: asyncio.Task[None], what: str) -> None:
    task.cancel()
    try:
        async with asyncio.timeout(STOPS_WITHIN):
            await asyncio.shield(task)
    except TimeoutError:
        task.cancel()  # a second cancellation does stop it: the first one was lost
        raise AssertionError(f"{what} went on after it was cancelled") from None
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # this test itself was cancelled
    assert task.cancelled(), f"{what} ended without being cancelled"


async def _trials(
    store: EventStore, start: Callable[[int], Awaitable[asyncio.Task[None]]], what: str
) -> int:
    """Start a follower, append, pause one of the timings, cancel; returns the trials run."""
    timings = [(turns, 0.0) for turns in TURNS] + [(0, sleep) for sleep in SLEEPS]
    trials = 0
    for repeat in range(2):
        for turns, sleep in timings:
            trials += 1
            task = await start(trials)
            await store.append(f"tick-{trials}", _tick(2), 1)
            await _pause(turns, sleep)
            await _stops(task, f"{what} (cancelled after {turns} turns, {sleep} s, #{repeat})")
    return trials


async def test_a_cancelled_subscriber_stops_at_any_timing_after_an_append(
    store: EventStore,
) -> None:
    async def start(trial: int) -> asyncio.Task[None]:
        await store.append(f"tick-{trial}", _tick(1))
        head = await store.head()

        async def follow() -> None:
            async for _ in store.subscribe(after=head):
                pass

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.02)  # waiting for new events by now
        return task

    trials = await _trials(store, start, "a subscriber")
    assert trials == 2 * (len(TURNS) + len(SLEEPS))


class Seen(Projection[Any]):
    """Remembers the positions it handled (in memory), so a test knows it is idle."""

    name = "seen"
    event_types = (Tick,)
    positions: ClassVar[list[Position]] = []

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Any]) -> None:
        Seen.positions.append(envelope.recorded.position)


async def test_a_cancelled_runner_stops_at_any_timing_after_an_append(store: EventStore) -> None:
    Seen.positions = []
    runners: list[ProjectionRunner] = []

    async def start(trial: int) -> asyncio.Task[None]:
        runner = ProjectionRunner(store, [Seen()], codec=codec, lease_ttl=30.0)
        runners.append(runner)
        task = asyncio.create_task(runner.run())
        first = (await store.append(f"tick-{trial}", _tick(1))).position
        await eventually(lambda: first in Seen.positions)  # following live, idle
        return task

    try:
        await _trials(store, start, "a runner")
    finally:
        for runner in runners:
            await runner.close()
