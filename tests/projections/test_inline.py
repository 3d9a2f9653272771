"""Inline projections on every backend: written in the append's transaction, so a failing
handler rolls the append back, and a query right after the append sees its effect."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from facta import (
    Event,
    EventEnvelope,
    EventStore,
    Hook,
    NewEvent,
    open_store,
)
from facta.projections import InlineProjections, ReadStore, Session, compose_hooks
from tests.projections.helpers import Counter, Counters, Tick, codec, fill


def ticks(*versions: int) -> list[NewEvent]:
    return [codec.encode(Tick(v)) for v in versions]


async def docs(store: EventStore) -> dict[str, Counter]:
    read_store = ReadStore(store)
    page = await read_store.documents(Counters).query()
    await read_store.close()
    return {c.stream: c for c in page.items}


async def test_an_append_and_its_inline_projection_commit_together(store: EventStore) -> None:
    inline = InlineProjections(store, [Counters()], codec=codec)
    await inline.setup()
    await store.append("tick-1", ticks(1, 2), 0, hook=inline)
    assert await docs(store) == {"tick-1": Counter("tick-1", 2, 3, 2)}
    read_store = ReadStore(store)
    [status] = await read_store.status("counters")
    assert (status.state, status.active, status.lag_events) == ("inline", True, 0)
    await read_store.close()


async def test_a_failing_inline_handler_rolls_the_append_back(store: EventStore) -> None:
    inline = InlineProjections(store, [Counters()], codec=codec)
    await inline.setup()
    await store.append("tick-1", ticks(1), 0, hook=inline)
    # Counters refuses a stream that does not start at version 1: tick-2 gets version 1, so
    # fake the gap with a stream whose first event the projection never saw.
    await store.append("tick-2", ticks(1))  # no hook: the projection misses it
    with pytest.raises(AssertionError, match="tick-2 v2 after v0"):
        await store.append("tick-2", ticks(2), 1, hook=inline)
    assert await store.stream_version("tick-2") == 1  # the append was rolled back
    assert await docs(store) == {"tick-1": Counter("tick-1", 1, 1, 1)}


async def test_concurrent_appends_fail_or_commit_each_on_their_own(store: EventStore) -> None:
    inline = InlineProjections(store, [Counters()], codec=codec)
    await inline.setup()
    await store.append("tick-9", ticks(1))  # unseen by the projection: appending v2 fails
    results = await asyncio.gather(
        *(store.append(f"tick-{i}", ticks(1), 0, hook=inline) for i in range(5)),
        store.append("tick-9", ticks(2), 1, hook=inline),
        return_exceptions=True,
    )
    assert [isinstance(r, AssertionError) for r in results] == [False] * 5 + [True]
    assert await docs(store) == {f"tick-{i}": Counter(f"tick-{i}", 1, 1, 1) for i in range(5)}


async def test_setup_builds_from_the_log_and_rebuilds_a_new_version(store: EventStore) -> None:
    await fill(store, 3, 4)
    inline = InlineProjections(store, [Counters()], codec=codec)
    await inline.setup()
    assert await docs(store) == {f"tick-{s}": Counter(f"tick-{s}", 4, 10, 4) for s in range(3)}
    await inline.setup()  # nothing to do: the same version is stored inline
    await store.append("tick-0", ticks(5), 4, hook=inline)
    await inline.close()  # done with version 1: its storage may go with the switch

    class CountersV2(Counters):
        version = 2

    seen: list[Any] = []
    inline2 = InlineProjections(store, [CountersV2()], codec=codec)
    await inline2.setup(progress=seen.append)
    assert seen[-1].done
    read_store = ReadStore(store)
    [status] = await read_store.status("counters")
    assert (status.version, status.state, status.handled) == (2, "inline", 13)
    await read_store.close()
    assert (await docs(store))["tick-0"] == Counter("tick-0", 5, 15, 5)


async def test_composed_hooks_run_in_order_inside_the_transaction(store: EventStore) -> None:
    inline = InlineProjections(store, [Counters()], codec=codec)
    await inline.setup()
    calls: list[str] = []

    async def audit(tx: Any, records: Any) -> None:
        calls.append(records[0].stream_id)
        if records[0].stream_id == "tick-7":
            raise RuntimeError("audit refused")

    hook = compose_hooks(inline, Hook(audit))
    await store.append("tick-1", ticks(1), 0, hook=hook)
    with pytest.raises(RuntimeError, match="audit refused"):
        await store.append("tick-7", ticks(1), 0, hook=hook)
    assert calls == ["tick-1", "tick-7"]
    assert await store.stream_version("tick-7") == 0
    assert list(await docs(store)) == ["tick-1"]


async def test_the_hook_refuses_to_run_before_setup(store: EventStore) -> None:
    inline = InlineProjections(store, [Counters()], codec=codec)
    with pytest.raises(RuntimeError, match="setup"):
        await store.append("tick-1", ticks(1), 0, hook=inline)
    assert await store.stream_version("tick-1") == 0


async def _another_process(store: EventStore) -> EventStore:
    """The same database as another process opens it: a store object of its own (the
    in-memory store lives in one process only, so it is itself)."""
    return store if store.name == "memory" else await open_store(store.url)


async def test_processes_setting_up_at_once_share_one_storage(store: EventStore) -> None:
    await fill(store, 3, 2)
    stores = [store, *[await _another_process(store) for _ in range(4)]]
    inlines = [InlineProjections(s, [Counters()], codec=codec) for s in stores]
    await asyncio.gather(*(inline.setup() for inline in inlines))
    read_store = ReadStore(store)
    [status] = await read_store.status("counters")
    await read_store.close()
    assert (status.state, status.active, status.handled) == ("inline", True, 6)
    for i, (other, inline) in enumerate(zip(stores, inlines, strict=True)):
        await other.append(f"tick-p{i}", ticks(1), 0, hook=inline)  # each writes the one
    expected = {f"tick-{s}": Counter(f"tick-{s}", 2, 3, 2) for s in range(3)}
    expected |= {f"tick-p{i}": Counter(f"tick-p{i}", 1, 1, 1) for i in range(len(stores))}
    assert await docs(store) == expected
    for other, inline in zip(stores, inlines, strict=True):
        await inline.close()
        if other is not store:
            await other.close()


async def test_a_switch_never_drops_storage_another_process_writes(store: EventStore) -> None:
    await fill(store, 2, 2)
    old = InlineProjections(store, [Counters()], codec=codec)
    await old.setup()
    elsewhere = await _another_process(store)

    class CountersV2(Counters):
        version = 2

    class CountersV3(Counters):
        version = 3

    new = InlineProjections(elsewhere, [CountersV2()], codec=codec)
    await new.setup()
    # Version 1 is not active any more, but its process still writes it: it is kept.
    await store.append("tick-0", ticks(3), 2, hook=old)
    read_store = ReadStore(store)
    assert [(s.version, s.active) for s in await read_store.status("counters")] == [
        (1, False),
        (2, True),
    ]
    await old.close()  # that process is done with it: the next switch drops it
    newest = InlineProjections(store, [CountersV3()], codec=codec)
    await newest.setup()
    assert [(s.version, s.active) for s in await read_store.status("counters")] == [
        (2, False),  # still written by `new`
        (3, True),
    ]
    await read_store.close()
    for inline in (new, newest):
        await inline.close()
    if elsewhere is not store:
        await elsewhere.close()


class _Refusing(Counters):
    """Counters that refuses stream tick-1 while ``refuse`` is set (a bug, then its fix)."""

    refuse = True

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Counter]) -> None:
        if self.refuse and envelope.recorded.stream_id == "tick-1":
            raise ValueError("tick-1 refused")
        await super().handle(envelope, session)


async def test_a_failed_build_fails_setup_and_the_next_setup_goes_on_from_there(
    store: EventStore,
) -> None:
    await fill(store, 3, 2)
    broken = InlineProjections(store, [_Refusing()], codec=codec)
    with pytest.raises(RuntimeError, match="tick-1 refused"):
        await broken.setup()
    await broken.close()
    _Refusing.refuse = False  # fixed, same version
    try:
        fixed = InlineProjections(store, [_Refusing()], codec=codec)
        await fixed.setup()
    finally:
        _Refusing.refuse = True
    assert await docs(store) == {f"tick-{s}": Counter(f"tick-{s}", 2, 3, 2) for s in range(3)}
    await fixed.close()
