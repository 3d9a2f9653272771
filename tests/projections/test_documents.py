"""The document store and its queries, on every backend: what a projection writes is what
queries read, with filters, ordering, keyset pagination, counts and exact sums."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from facta import Codec, Event, EventEnvelope, EventStore
from facta.projections import DocumentSpec, Projection, ProjectionRunner, ReadStore, Session


class ItemSet(Event, frozen=True):
    key: str
    owner: str
    score: int
    price: Decimal
    flag: bool


class ItemDeleted(Event, frozen=True):
    key: str


class Item(msgspec.Struct, frozen=True):
    key: str
    owner: str
    score: int
    price: Decimal
    flag: bool
    note: str | None = None


class Items(Projection[Item]):
    name = "items"
    event_types = (ItemSet, ItemDeleted)
    document = Item
    indexes = ("owner", "score", "price", "flag")

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Item]) -> None:
        match envelope.event:
            case ItemSet(key=key, owner=owner, score=score, price=price, flag=flag):
                before = await session.get(key)
                note = "updated" if before is not None else None
                session.put(key, Item(key, owner, score, price, flag, note))
            case ItemDeleted(key=key):
                session.delete(key)


codec = Codec([ItemSet, ItemDeleted])
OWNERS = ["ann", "bob", "cy"]


def item(i: int) -> ItemSet:
    return ItemSet(f"k{i:03}", OWNERS[i % 3], i % 7, Decimal(i) / 100 + Decimal("0.01"), i % 2 == 0)


@pytest.fixture
async def documents(store: EventStore):  # type: ignore[no-untyped-def]
    for i in range(60):
        await store.append(f"item-{i}", [codec.encode(item(i))])
    await store.append("item-5", [codec.encode(ItemSet("k005", "bob", 6, Decimal("9.99"), True))])
    await store.append("item-7", [codec.encode(ItemDeleted("k007"))])
    runner = ProjectionRunner(store, [Items()], codec=codec, batch_size=16)
    await runner.catch_up()
    await runner.close()
    read_store = ReadStore(store)
    yield read_store.documents(Items)
    await read_store.close()


def expected() -> dict[str, Item]:
    items = {}
    for i in range(60):
        e = item(i)
        items[e.key] = Item(e.key, e.owner, e.score, e.price, e.flag)
    items["k005"] = Item("k005", "bob", 6, Decimal("9.99"), True, "updated")
    del items["k007"]
    return items


async def test_get_returns_the_latest_document_and_none_when_deleted(documents) -> None:  # type: ignore[no-untyped-def]
    assert await documents.get("k005") == expected()["k005"]
    assert await documents.get("k007") is None
    assert await documents.get("nope") is None


async def test_filters_match_a_scan_of_the_expected_documents(documents) -> None:  # type: ignore[no-untyped-def]
    everything = expected()
    cases = [
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
        page = await documents.query(where, limit=1000)
        assert page.items == sorted(
            (d for d in everything.values() if match(d)), key=lambda d: d.key
        ), where
        assert page.next is None
        assert await documents.count(where) == len(page.items)


@pytest.mark.parametrize(
    ("order_by", "descending"), [("score", False), ("price", True), ("key", True), ("owner", False)]
)
async def test_keyset_pages_cover_every_document_once_in_order(
    documents, order_by: str, descending: bool
) -> None:  # type: ignore[no-untyped-def]
    seen: list[Item] = []
    after = None
    while True:
        page = await documents.query(
            {"flag": True}, order_by=order_by, descending=descending, after=after, limit=7
        )
        seen.extend(page.items)
        if page.next is None:
            break
        after = page.next
    field = "key" if order_by == "key" else order_by
    want = sorted(
        (d for d in expected().values() if d.flag),
        key=lambda d: (getattr(d, field), d.key),
        reverse=descending,
    )
    assert seen == want


async def test_sum_of_a_decimal_field_is_exact(documents) -> None:  # type: ignore[no-untyped-def]
    everything = expected().values()
    assert await documents.sum("price") == sum((d.price for d in everything), Decimal(0))
    bobs = [d for d in everything if d.owner == "bob"]
    assert await documents.sum("price", {"owner": "bob"}) == sum(
        (d.price for d in bobs), Decimal(0)
    )
    assert await documents.sum("score", {"owner": "nobody"}) == 0
    assert await documents.count() == 59


BAD_QUERIES = [
    (lambda d: d.query({"note": "x"}), "not an indexed field"),
    (lambda d: d.query([("score", "~", 1)]), "unknown filter operator"),
    (lambda d: d.query({"score": "many"}), "does not fit"),
    (lambda d: d.query([("owner", "in", "ann")]), "needs a list"),
    (lambda d: d.query([("owner", "=")]), "a filter is"),
    (lambda d: d.query(order_by="note"), "not an indexed field"),
    (lambda d: d.query(limit=0), "limit must be"),
    (lambda d: d.query(limit=5000), "limit must be"),
    (lambda d: d.query(after="!!not-a-cursor"), "invalid page cursor"),
    (lambda d: d.sum("owner"), "not a numeric field"),
]


async def test_bad_queries_raise_value_error_naming_the_problem(documents) -> None:  # type: ignore[no-untyped-def]
    for call, message in BAD_QUERIES:
        with pytest.raises(ValueError, match=message):
            await call(documents)


def test_a_document_spec_refuses_indexes_that_cannot_be_columns() -> None:
    with pytest.raises(TypeError, match="no field"):
        DocumentSpec(Item, ["missing"])
    with pytest.raises(TypeError, match="must be str, int"):
        DocumentSpec(Item, ["note"])


async def test_queries_on_a_projection_with_no_storage_yet_are_empty(store: EventStore) -> None:
    read_store = ReadStore(store)
    documents = read_store.documents(Items)
    assert await documents.get("k1") is None
    assert (await documents.query()).items == []
    assert await documents.count() == 0
    assert await documents.sum("price") == Decimal(0)
    await read_store.close()
