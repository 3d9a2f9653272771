"""The read-model store contract, as tests an engine runs: what a projection writes is what
queries read (filters, ordering, keyset pages, counts, exact sums), and the runner on top of
the engine applies every event exactly once, in order, whoever holds the projection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from facta.codec import Codec
from facta.domain import Event
from facta.projections import Documents, Projection, ProjectionRunner, ReadStore, Session
from facta.results import EventEnvelope
from facta.store.base import NewEvent, Position
from facta.store.engine import Engine


class ItemSet(Event, frozen=True):
    """A document written (the conformance suite's own event type)."""

    key: str
    owner: str
    score: int
    price: Decimal
    flag: bool


class ItemDeleted(Event, frozen=True):
    """A document deleted."""

    key: str


class Item(msgspec.Struct, frozen=True):
    """The document: one field of each indexable kind."""

    key: str
    owner: str
    score: int
    price: Decimal
    flag: bool
    note: str | None = None


class Items(Projection[Item]):
    """A projection over ItemSet and ItemDeleted, indexed on every kind of field."""

    name = "conformance_items"
    event_types = (ItemSet, ItemDeleted)
    document = Item
    indexes = ("owner", "score", "price", "flag")

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Item]) -> None:
        """Put or delete the item; an item written again is noted as updated."""
        match envelope.event:
            case ItemSet(key=key, owner=owner, score=score, price=price, flag=flag):
                before = await session.get(key)
                note = "updated" if before is not None else None
                session.put(key, Item(key, owner, score, price, flag, note))
            case ItemDeleted(key=key):
                session.delete(key)


class Tick(Event, frozen=True):
    """A numbered event of a tick stream."""

    n: int


class Counter(msgspec.Struct, frozen=True):
    """One tick stream as the Counters projection sees it."""

    stream: str
    events: int
    total: int
    last_version: int


class Counters(Projection[Counter]):
    """One document per stream; raises on an event out of order or applied twice, so any
    double application or gap fails the projection."""

    name = "conformance_counters"
    event_types = (Tick,)
    document = Counter
    indexes = ("events",)

    def key_of(self, envelope: EventEnvelope[Event]) -> str:
        """The stream: documents are loaded a batch at a time."""
        return envelope.recorded.stream_id

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Counter]) -> None:
        """Count the tick, checking that it follows the last one counted."""
        recorded = envelope.recorded
        assert isinstance(envelope.event, Tick)
        current = await session.get(recorded.stream_id) or Counter(recorded.stream_id, 0, 0, 0)
        if recorded.version != current.last_version + 1:
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


CODEC = Codec([ItemSet, ItemDeleted, Tick])
_OWNERS = ["ann", "bob", "cy"]


def _item(i: int) -> ItemSet:
    return ItemSet(
        f"k{i:03}", _OWNERS[i % 3], i % 7, Decimal(i) / 100 + Decimal("0.01"), i % 2 == 0
    )


def _expected_items() -> dict[str, Item]:
    items = {}
    for i in range(60):
        e = _item(i)
        items[e.key] = Item(e.key, e.owner, e.score, e.price, e.flag)
    items["k005"] = Item("k005", "bob", 6, Decimal("9.99"), True, "updated")
    del items["k007"]
    return items


async def _ticks(store: Engine, streams: int, per_stream: int) -> Position:
    """Append ``per_stream`` ticks to each of ``streams`` streams; return once readers see
    them (an engine may hold committed events back while older transactions run)."""
    last = Position(0, 0)
    for s in range(streams):
        version = await store.stream_version(f"tick-{s}")
        events = [
            NewEvent("Tick", msgspec.json.encode({"n": version + i}))
            for i in range(1, per_stream + 1)
        ]
        last = max(last, (await store.append(f"tick-{s}", events, version)).position)
    async with asyncio.timeout(30):
        while await store.head() < last:
            await store.wait_for_events(await store.head(), 0.05)
    return last


def _counted(streams: int, per_stream: int) -> dict[str, Counter]:
    total = per_stream * (per_stream + 1) // 2
    return {
        f"tick-{s}": Counter(f"tick-{s}", per_stream, total, per_stream) for s in range(streams)
    }


async def _counters(store: Engine) -> dict[str, Counter]:
    page = await ReadStore(store).documents(Counters).query(limit=1000)
    return {c.stream: c for c in page.items}


async def _eventually(check: Callable[[], Any], seconds: float = 20.0) -> None:
    """Poll ``check`` (an async predicate over the store) until it holds."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the condition is in the database
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _running(runner: ProjectionRunner) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(runner.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.close()


BAD_QUERIES: Sequence[tuple[Callable[[Documents[Item]], Any], str]] = [
    (lambda d: d.query({"note": "x"}), "not an indexed field"),
    (lambda d: d.query([("score", "~", 1)]), "unknown filter operator"),
    (lambda d: d.query({"score": "many"}), "does not fit"),
    (lambda d: d.query([("owner", "in", "ann")]), "needs a list"),
    (lambda d: d.query(order_by="note"), "not an indexed field"),
    (lambda d: d.query(limit=0), "limit must be"),
    (lambda d: d.query(after="!!not-a-cursor"), "invalid page cursor"),
    (lambda d: d.sum("owner"), "not a numeric field"),
]


class ReadModelContract:
    """What every engine's read-model store does, through the projection runner and the
    read store on top of it. Needs a ``store`` fixture: an open, empty engine."""

    @pytest.fixture
    async def items(self, store: Engine) -> Documents[Item]:
        """The Items projection built over 60 items, one rewritten and one deleted."""
        for i in range(60):
            await store.append(f"item-{i}", [CODEC.encode(_item(i))])
        rewrite = ItemSet("k005", "bob", 6, Decimal("9.99"), True)
        await store.append("item-5", [CODEC.encode(rewrite)])
        await store.append("item-7", [CODEC.encode(ItemDeleted("k007"))])
        runner = ProjectionRunner(store, [Items()], codec=CODEC, batch_size=16)
        await runner.catch_up()
        await runner.close()
        return ReadStore(store).documents(Items)

    async def test_get_returns_the_latest_document_and_none_when_deleted(
        self, items: Documents[Item]
    ) -> None:
        assert await items.get("k005") == _expected_items()["k005"]
        assert await items.get("k007") is None
        assert await items.get("nope") is None

    async def test_filters_match_a_scan_of_the_documents(self, items: Documents[Item]) -> None:
        everything = _expected_items()
        cases: list[tuple[Any, Callable[[Item], bool]]] = [
            ({"owner": "bob"}, lambda d: d.owner == "bob"),
            ([("score", ">=", 4), ("flag", "=", True)], lambda d: d.score >= 4 and d.flag),
            ([("price", "<", Decimal("0.2"))], lambda d: d.price < Decimal("0.2")),
            (
                [("owner", "in", ["ann", "cy"]), ("score", "!=", 0)],
                lambda d: d.owner != "bob" and d.score != 0,
            ),
            ([("key", ">", "k050")], lambda d: d.key > "k050"),
            ([("owner", "in", [])], lambda d: False),
        ]
        for where, match in cases:
            page = await items.query(where, limit=1000)
            wanted = sorted((d for d in everything.values() if match(d)), key=lambda d: d.key)
            assert page.items == wanted, where
            assert page.next is None
            assert await items.count(where) == len(page.items)

    @pytest.mark.parametrize(
        ("order_by", "descending"),
        [("score", False), ("price", True), ("key", True), ("owner", False)],
    )
    async def test_keyset_pages_cover_every_document_once_in_order(
        self, items: Documents[Item], order_by: str, descending: bool
    ) -> None:
        seen: list[Item] = []
        after = None
        while True:
            page = await items.query(
                {"flag": True}, order_by=order_by, descending=descending, after=after, limit=7
            )
            seen.extend(page.items)
            if page.next is None:
                break
            after = page.next
        want = sorted(
            (d for d in _expected_items().values() if d.flag),
            key=lambda d: (getattr(d, order_by), d.key),
            reverse=descending,
        )
        assert seen == want

    async def test_sums_are_exact_and_counts_match(self, items: Documents[Item]) -> None:
        everything = _expected_items().values()
        assert await items.sum("price") == sum((d.price for d in everything), Decimal(0))
        bobs = [d.price for d in everything if d.owner == "bob"]
        assert await items.sum("price", {"owner": "bob"}) == sum(bobs, Decimal(0))
        assert await items.sum("score", {"owner": "nobody"}) == 0
        assert await items.count() == 59

    async def test_bad_queries_raise_value_error_naming_the_problem(
        self, items: Documents[Item]
    ) -> None:
        for call, message in BAD_QUERIES:
            with pytest.raises(ValueError, match=message):
                await call(items)

    async def test_a_projection_with_no_storage_yet_reads_as_empty(self, store: Engine) -> None:
        documents = ReadStore(store).documents(Items)
        assert await documents.get("k1") is None
        assert (await documents.query()).items == []
        assert await documents.count() == 0

    async def test_the_runner_applies_every_event_once_then_follows_live(
        self, store: Engine
    ) -> None:
        await _ticks(store, 4, 6)
        runner = ProjectionRunner(store, [Counters()], codec=CODEC, batch_size=5)
        async with _running(runner):
            await _eventually(lambda: _equal(store, _counted(4, 6)))
            await _ticks(store, 4, 3)
            await _eventually(lambda: _equal(store, _counted(4, 9)))
        [status] = await ReadStore(store).status(Counters.name)
        assert (status.handled, status.error, status.state) == (36, None, "stopped")

    async def test_one_runner_holds_a_projection_and_another_takes_over_from_its_checkpoint(
        self, store: Engine
    ) -> None:
        await _ticks(store, 3, 4)
        first = ProjectionRunner(store, [Counters()], codec=CODEC, owner="first", lease_ttl=5)
        second = ProjectionRunner(
            store, [Counters()], codec=CODEC, owner="second", lease_ttl=5, poll_interval=0.05
        )
        async with _running(first):
            await _eventually(lambda: _equal(store, _counted(3, 4)))
            async with _running(second):

                async def second_asked() -> bool:  # its first claim may come after the ticks
                    return Counters.name in second.waiting

                await _ticks(store, 3, 2)
                await _eventually(lambda: _equal(store, _counted(3, 6)))
                await _eventually(second_asked)  # and was told to wait: held by the first
                await asyncio.sleep(0.2)
                assert Counters.name in second.waiting, second.waiting
        async with _running(second):  # the first let go on its way out: no wait for a lease
            await _ticks(store, 3, 1)
            await _eventually(lambda: _equal(store, _counted(3, 7)))

    async def test_a_runner_that_lost_its_lease_writes_nothing(self, store: Engine) -> None:
        """Runner A stalls mid-batch past its lease; runner B takes the projection over and
        finishes it; A's late commit is refused, so nothing is applied twice."""
        await _ticks(store, 3, 5)
        gated = _Gated()
        a = ProjectionRunner(
            store, [gated], codec=CODEC, lease_ttl=0.3, owner="a", poll_interval=0.05
        )
        stalled = asyncio.create_task(a.catch_up())
        async with asyncio.timeout(20):
            await gated.reached.wait()
        b = ProjectionRunner(
            store, [Counters()], codec=CODEC, lease_ttl=0.3, owner="b", poll_interval=0.05
        )
        async with _running(b):
            await _eventually(lambda: _equal(store, _counted(3, 5)))
        gated.gate.set()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(20):
                await stalled
        assert await _counters(store) == _counted(3, 5)
        [status] = await ReadStore(store).status(Counters.name)
        assert (status.handled, status.error) == (15, None)


class _Gated(Counters):
    """Counters whose handler waits at tick-0 version 3 until ``gate`` opens."""

    def __init__(self) -> None:
        self.gate, self.reached = asyncio.Event(), asyncio.Event()

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Counter]) -> None:
        """Stall at tick-0 version 3, then count as Counters does."""
        if envelope.recorded.stream_id == "tick-0" and envelope.recorded.version == 3:
            self.reached.set()
            await self.gate.wait()
        await super().handle(envelope, session)


async def _equal(store: Engine, wanted: dict[str, Counter]) -> bool:
    return await _counters(store) == wanted
