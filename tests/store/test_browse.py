"""The Browsing capability on every engine: streams by id prefix in id order, keyset pages,
totals, the events of a correlation, every relay's row."""

from __future__ import annotations

import msgspec

from facta import Engine, NewEvent
from facta.store.browse import prefix_bounds
from facta.store.engine import Browsing


def event(meta: dict[str, str]) -> NewEvent:
    return NewEvent("Noted", b"{}", metadata=msgspec.json.encode(meta))


async def test_streams_by_prefix_are_listed_in_id_order_and_paged(store: Engine) -> None:
    browser = store.require(Browsing)
    for stream in ["account-b", "account-a", "account-ab", "accountant-x", "transfer-a", "account"]:
        await store.append(stream, [event({}), event({})])
    listed = await browser.streams("account-", None, 10)
    assert [s.stream_id for s in listed] == ["account-a", "account-ab", "account-b"]
    assert {s.version for s in listed} == {2}
    first = await browser.streams("account", None, 2)
    assert [s.stream_id for s in first] == ["account", "account-a"]
    rest = await browser.streams("account", first[-1].stream_id, 10)
    assert [s.stream_id for s in rest] == ["account-ab", "account-b", "accountant-x"]
    assert len(await browser.streams("", None, 100)) == 6
    assert await browser.streams("zzz", None, 10) == []
    totals = await browser.totals()
    assert (totals.events, totals.streams) == (12, 6)


async def test_a_correlation_is_found_by_its_id_a_command_id_or_an_event_id(
    store: Engine,
) -> None:
    browser = store.require(Browsing)
    first = event({"correlation_id": "c-1", "causation_id": "c-1"})
    await store.append("a-1", [first])
    await store.append("b-1", [event({"correlation_id": "c-1", "command_id": "cmd-9"})])
    await store.append("c-1", [event({"correlation_id": "other"})])
    assert [r.stream_id for r in await browser.correlated("c-1", 10)] == ["a-1", "b-1"]
    assert [r.stream_id for r in await browser.correlated("cmd-9", 10)] == ["b-1"]
    assert [r.stream_id for r in await browser.correlated(first.event_id, 10)] == ["a-1"]
    assert len(await browser.correlated("c-1", 1)) == 1
    assert await browser.correlated("c-", 10) == []  # a whole value, not a part of one


async def test_every_relays_row_is_listed(store: Engine) -> None:
    browser = store.require(Browsing)
    assert await browser.relays() == []
    await store.relay_checkpoints.acquire("nats://b", "me", 30)
    await store.relay_checkpoints.acquire("amqp://a", "me", 30)
    assert [r.name for r in await browser.relays()] == ["amqp://a", "nats://b"]


def test_prefix_bounds() -> None:
    assert prefix_bounds("") == ("", None)
    assert prefix_bounds("account-") == ("account-", "account.")
    assert prefix_bounds("a~") == ("a~", "a\x7f")
