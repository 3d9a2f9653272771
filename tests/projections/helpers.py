"""Projections and events the read-side tests share."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import msgspec

from facta import Codec, Event, EventEnvelope, EventStore, NewEvent, Position
from facta.projections import Projection, Session


class Tick(Event, frozen=True):
    n: int


class Tock(Event, frozen=True):
    n: int


codec = Codec([Tick, Tock])


class Counter(msgspec.Struct, frozen=True):
    stream: str
    events: int
    total: int
    last_version: int


class Counters(Projection[Counter]):
    """One document per stream; raises if an event arrives out of order or twice, so any
    double application or gap fails the projection."""

    name = "counters"
    event_types = (Tick,)
    document = Counter
    indexes = ("events", "total")

    def key_of(self, envelope: EventEnvelope[Event]) -> str:
        return envelope.recorded.stream_id

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Counter]) -> None:
        recorded = envelope.recorded
        assert isinstance(envelope.event, Tick)
        current = await session.get(recorded.stream_id) or Counter(recorded.stream_id, 0, 0, 0)
        tick_versions = recorded.version  # Ticks only: every event of a tick stream is a Tick
        if tick_versions != current.last_version + 1:
            raise AssertionError(
                f"{recorded.stream_id} v{recorded.version} after v{current.last_version}"
            )
        session.put(
            recorded.stream_id,
            Counter(
                recorded.stream_id,
                current.events + 1,
                current.total + envelope.event.n,
                recorded.version,
            ),
        )


class Applied(msgspec.Struct, frozen=True):
    """One stream's events as the runners applied them: each version, and the process that
    applied it (its pid), in the order applied."""

    stream: str
    versions: list[int]
    pids: list[int]


class Applications(Projection[Applied]):
    """One document per stream in eight partitions, for the runner processes of
    ``test_partition_fleet``: records every version and who applied it, and raises (failing
    its partition) when a version is not the last one plus one, so an event applied twice,
    skipped or out of order stops the projection. It pauses ``pace`` seconds at every tenth
    version of a stream, so that a catch-up lasts long enough to kill and pause its runners
    in the middle."""

    name = "fleet_applied"
    partitions = 8
    event_types = (Tick,)
    document = Applied
    pace = 0.01

    def key_of(self, envelope: EventEnvelope[Event]) -> str:
        return envelope.recorded.stream_id

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Applied]) -> None:
        recorded = envelope.recorded
        assert isinstance(envelope.event, Tick)
        current = await session.get(recorded.stream_id)
        versions, pids = (current.versions, current.pids) if current else ([], [])
        last = versions[-1] if versions else 0
        if recorded.version != last + 1 or envelope.event.n != recorded.version:
            raise AssertionError(f"{recorded.stream_id} v{recorded.version} after v{last}")
        session.put(
            recorded.stream_id,
            Applied(
                recorded.stream_id,
                [*versions, recorded.version],
                [*pids, os.getpid()],
            ),
        )
        if self.pace and recorded.version % 10 == 0:
            await asyncio.sleep(self.pace)


async def fill(store: EventStore, streams: int, per_stream: int, *, start: int = 0) -> Position:
    """Append ``per_stream`` Ticks (n = version) to each of ``streams`` streams; returns when
    readers can see them (PostgreSQL holds events back while an older transaction runs)."""
    appends = []
    for s in range(start, start + streams):
        version = await store.stream_version(f"tick-{s}")
        events = [
            NewEvent("Tick", msgspec.json.encode({"n": version + i}))
            for i in range(1, per_stream + 1)
        ]
        appends.append(store.append(f"tick-{s}", events, version))
    last = max(r.position for r in await asyncio.gather(*appends))
    while await store.head() < last:
        await store.wait_for_events(await store.head(), 0.05)
    return last


async def eventually(check: Callable[[], object], seconds: float = 10.0) -> None:
    """Wait until the async ``check`` returns true."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
