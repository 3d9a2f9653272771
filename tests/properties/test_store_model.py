"""A stateful model test of the EventStore contract: random appends and reads against every
backend, each answer compared with a simple reference model held in lists."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from facta import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EventStore,
    NewEvent,
    RecordedEvent,
    WrongExpectedVersion,
)
from tests.conftest import BACKENDS

STREAMS = ["order-1", "order-2", "user-1"]


class StoreModel(RuleBasedStateMachine):
    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.scratch = tempfile.TemporaryDirectory()
        self.store: EventStore = self.run(BACKENDS[self.backend](Path(self.scratch.name)))
        self.streams: dict[str, list[RecordedEvent]] = {s: [] for s in STREAMS}
        self.log: list[RecordedEvent] = []
        self.last_batch: tuple[str, list[NewEvent]] | None = None

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        self.scratch.cleanup()

    @initialize()
    def start(self) -> None:
        assert self.run(self.store.read_all()) == []

    @rule(
        stream=st.sampled_from(STREAMS),
        count=st.integers(0, 3),
        kind=st.sampled_from(["exact", "wrong", "no_stream", "exists", "any"]),
        offset=st.integers(1, 3),
    )
    def append(self, stream: str, count: int, kind: str, offset: int) -> None:
        current = len(self.streams[stream])
        expected: Any = {
            "exact": current,
            "wrong": current + offset,
            "no_stream": NO_STREAM,
            "exists": STREAM_EXISTS,
            "any": ANY,
        }[kind]
        allowed = {
            "exact": True,
            "wrong": False,
            "no_stream": current == 0,
            "exists": current > 0,
            "any": True,
        }[kind]
        events = [NewEvent(f"Type{i % 2}", b'{"n":%d}' % i, 1, b'{"k":"v"}') for i in range(count)]
        head_before = self.run(self.store.head())
        try:
            result = self.run(self.store.append(stream, events, expected))
        except WrongExpectedVersion as error:
            assert not allowed, f"{kind} refused at version {current}"
            assert error.actual == current  # noqa: PT017 (a model step, not one case)
            assert self.run(self.store.head()) == head_before
            return
        assert allowed, f"{kind} accepted at version {current}"
        assert result.version == current + count
        assert [e.event_id for e in result.events] == [e.event_id for e in events]
        assert [e.version for e in result.events] == list(range(current + 1, current + count + 1))
        self.streams[stream].extend(result.events)
        self.log.extend(result.events)
        if events:
            self.last_batch = (stream, events)

    @rule()
    def repeat_last_append(self) -> None:
        if self.last_batch is None:
            return
        stream, events = self.last_batch
        result = self.run(self.store.append(stream, events, ANY))
        assert [e.event_id for e in result.events] == [e.event_id for e in events]
        stored = {e.event_id: e for e in self.streams[stream]}
        assert list(result.events) == [stored[e.event_id] for e in events]

    @rule(
        stream=st.sampled_from(STREAMS),
        start=st.integers(1, 8),
        stop=st.none() | st.integers(0, 8),
        backwards=st.booleans(),
        limit=st.none() | st.integers(1, 4),
    )
    def read_stream(
        self, stream: str, start: int, stop: int | None, backwards: bool, limit: int | None
    ) -> None:
        got = self.run(
            self.store.read_stream(
                stream, from_version=start, to_version=stop, backwards=backwards, limit=limit
            )
        )
        want = [e for e in self.streams[stream] if e.version >= start]
        if stop is not None:
            want = [e for e in want if e.version <= stop]
        if backwards:
            want.reverse()
        if limit is not None:
            want = want[:limit]
        assert got == want

    @rule(
        skip=st.integers(0, 12),
        limit=st.integers(1, 5),
        categories=st.none() | st.sampled_from([["order"], ["user"], ["order", "user"]]),
        types=st.none() | st.sampled_from([["Type0"], ["Type1"]]),
    )
    def read_all(
        self, skip: int, limit: int, categories: list[str] | None, types: list[str] | None
    ) -> None:
        after = self.log[skip - 1].position if 0 < skip <= len(self.log) else None
        kwargs: dict[str, Any] = {"limit": limit, "categories": categories, "types": types}
        if after is not None:
            kwargs["after"] = after
        got = self.run(self.store.read_all(**kwargs))
        want = self.log[skip:] if after is not None else self.log
        if categories:
            want = [e for e in want if e.category in categories]
        if types:
            want = [e for e in want if e.type in types]
        assert got == want[:limit]

    @invariant()
    def versions_and_head_agree(self) -> None:
        for stream, events in self.streams.items():
            assert self.run(self.store.stream_version(stream)) == len(events)
        if self.log:
            assert self.run(self.store.head()) == self.log[-1].position


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_the_store_behaves_like_the_model(backend: str) -> None:
    machine = type(f"StoreModel_{backend}", (StoreModel,), {"backend": backend})
    machine.TestCase.settings = settings(
        max_examples=30 if backend != "postgres" else 15,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()
