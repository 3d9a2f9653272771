"""Racers on consistency boundaries (storage contract 7), on every engine: in each round 16
writers read one shared tag and append under a condition on it, and exactly one commits; 16
writers on tags of their own all commit (no false conflicts); a reader tailing the whole log
meanwhile sees every committed event once, in order.

On SQLite and PostgreSQL the writers are spread over several engines on the same database,
so their appends are separate transactions that really race (one engine would put them in
one group commit). ``FACTA_DCB_ROUNDS`` and ``FACTA_DCB_WRITERS`` set the rounds and the
writers per round (``make soak`` runs 1,000 rounds of 32).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from facta import Engine, open_store
from facta.errors import AppendConditionFailed
from facta.store.base import NewEvent, RecordedEvent
from facta.store.boundaries import Query
from facta.store.engine import Boundaries
from tests.conftest import open_scratch_postgres

ROUNDS = int(os.environ.get("FACTA_DCB_ROUNDS", "60"))
WRITERS = int(os.environ.get("FACTA_DCB_WRITERS", "16"))
ENGINES = 4


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def engines(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Engine]]:
    """Engines on one store: one for memory (it lives in the process), else ``ENGINES``."""
    opened: list[Engine] = []
    try:
        if request.param == "memory":
            opened.append(await open_store("memory://"))
        elif request.param == "sqlite":
            for _ in range(ENGINES):
                opened.append(await open_store(f"sqlite:///{tmp_path / 'race.db'}"))
        else:
            first = await open_scratch_postgres(pool_size=4)
            opened.append(first)
            url = f"{first.url}&pool_size=4" if "?" in first.url else f"{first.url}?pool_size=4"
            for _ in range(ENGINES - 1):
                opened.append(await open_store(url))
        yield opened
    finally:
        for engine in reversed(opened):
            await engine.close()


def _event(kind: str, tag: str, n: int) -> NewEvent:
    return NewEvent(kind, b'{"n":%d}' % n, tags=(tag,))


async def _tail(engine: Engine, into: list[RecordedEvent], stop: asyncio.Event) -> None:
    async for event in engine.subscribe(batch_size=100):
        into.append(event)
        if stop.is_set() and event.position >= await engine.head():
            return


async def test_one_racer_commits_per_round_and_disjoint_racers_all_commit(
    engines: list[Engine],
) -> None:
    boundaries = [engine.require(Boundaries) for engine in engines]
    tailed: list[RecordedEvent] = []
    stop = asyncio.Event()
    tail = asyncio.create_task(_tail(engines[0], tailed, stop))
    committed: list[RecordedEvent] = []
    try:
        for round_ in range(ROUNDS):
            hot = Query.of(types=["SeatTaken"], tags=[f"seat:{round_}"])
            read = await boundaries[0].read(hot)
            results = await asyncio.gather(
                *(
                    boundaries[n % len(boundaries)].append(
                        [_event("SeatTaken", f"seat:{round_}", n)], read.condition(hot)
                    )
                    for n in range(WRITERS)
                ),
                return_exceptions=True,
            )
            won = [r for r in results if not isinstance(r, BaseException)]
            refused = [r for r in results if isinstance(r, AppendConditionFailed)]
            assert (len(won), len(refused)) == (1, WRITERS - 1), (round_, results)
            committed.extend(won[0].events)

            own = [Query.of(tags=[f"own:{round_}:{n}"]) for n in range(WRITERS)]
            reads = [await boundaries[0].read(q) for q in own]
            disjoint = await asyncio.gather(
                *(
                    boundaries[n % len(boundaries)].append(
                        [_event("Mine", f"own:{round_}:{n}", n)], reads[n].condition(own[n])
                    )
                    for n in range(WRITERS)
                ),
                return_exceptions=True,
            )
            failed = [r for r in disjoint if isinstance(r, BaseException)]
            assert failed == [], (round_, failed)  # no false conflicts
            committed.extend(
                e for r in disjoint if not isinstance(r, BaseException) for e in r.events
            )
        stop.set()
        await engines[0].append("marker-1", [NewEvent("Marker", b"{}")])
        async with asyncio.timeout(30):
            await tail
    finally:
        tail.cancel()
    ids = [e.event_id for e in tailed if e.type != "Marker"]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert sorted(ids) == sorted(e.event_id for e in committed), "the reader missed events"
    positions = [e.position for e in tailed]
    assert positions == sorted(positions)
    for round_ in range(ROUNDS):
        seats = await boundaries[0].read(Query.of(tags=[f"seat:{round_}"]))
        assert len(seats.events) == 1


async def test_racers_under_a_condition_without_tags_one_commits(engines: list[Engine]) -> None:
    """A condition on types alone sees untagged events, which take no lock key: on
    PostgreSQL it locks the log against writers instead, and still only one racer wins."""
    boundaries = [engine.require(Boundaries) for engine in engines]
    for round_ in range(max(ROUNDS // 6, 5)):
        query = Query.of(types=[f"Only{round_}"])
        read = await boundaries[0].read(query)
        results = await asyncio.gather(
            *(
                boundaries[n % len(boundaries)].append(
                    [NewEvent(f"Only{round_}", b"{}")], read.condition(query)
                )
                for n in range(WRITERS)
            ),
            # a plain append of the type from an aggregate, racing them
            engines[-1].append(f"agg-{round_}", [NewEvent(f"Only{round_}", b"{}")]),
            return_exceptions=True,
        )
        conditional, plain = results[:-1], results[-1]
        assert not isinstance(plain, BaseException), plain
        won = [r for r in conditional if not isinstance(r, BaseException)]
        refused = [r for r in conditional if isinstance(r, AppendConditionFailed)]
        assert len(won) + len(refused) == WRITERS, results
        assert len(won) <= 1, (round_, results)
        stored = (await boundaries[0].read(query)).events
        assert len(stored) == len(won) + 1  # the winner, if any, and the plain append
        for result in won:  # its condition (no event of the type at all) held at its commit
            assert stored[0].event_id == result.events[0].event_id
