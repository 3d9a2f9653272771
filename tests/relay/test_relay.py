"""The relay's loop and its leases, with a publisher that records what the broker took.

The broker tests (test_brokers.py) prove the same against RabbitMQ and NATS; here the
failures are exact: the publisher refuses a chosen batch, so the resend can be checked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from pathlib import Path

import pytest

from facta import (
    NewEvent,
    Position,
    open_store,
)
from facta.relay import Message, PublishError, Relay
from facta.store.base import EventStore
from facta.store.memory import MemoryEngine
from tests.relay.conftest import until


class RecordingPublisher:
    """A broker in a list: confirms after a turn of the loop; refuses the ``fail_at``-th
    call's batch (after taking half of it, as a dropped connection would)."""

    destination = "memory://recorded"
    is_connected = True

    def __init__(self, fail_at: int | None = None) -> None:
        self.taken: list[Message] = []
        self.calls = 0
        self.connects = 0
        self.fail_at = fail_at
        self.most_in_flight = 0
        self._in_flight = 0

    async def connect(self) -> None:
        self.connects += 1

    async def publish(self, messages: Sequence[Message]) -> Awaitable[None]:
        self.calls += 1
        if self.calls == self.fail_at:
            self.taken.extend(messages[: len(messages) // 2])
            raise PublishError("connection dropped")
        self.taken.extend(messages)
        self._in_flight += len(messages)
        self.most_in_flight = max(self.most_in_flight, self._in_flight)
        return asyncio.ensure_future(self._confirm(len(messages)))

    async def _confirm(self, count: int) -> None:
        await asyncio.sleep(0)
        self._in_flight -= count

    async def close(self) -> None:
        pass


async def _fill(store: EventStore, streams: int, per_stream: int) -> None:
    for _ in range(per_stream):
        for s in range(streams):
            await store.append(f"order-{s}", [NewEvent("Placed", b"{}")])


def _versions(messages: list[Message]) -> dict[str, list[int]]:
    """Each stream's versions as a consumer that drops repeats by event id sees them."""
    seen: set[str] = set()
    out: dict[str, list[int]] = {}
    for m in messages:
        if m.event_id not in seen:
            seen.add(m.event_id)
            out.setdefault(m.stream_id, []).append(int(m.headers["stream-version"]))
    return out


async def test_catch_up_in_order_within_the_in_flight_bound() -> None:
    store = MemoryEngine()
    await _fill(store, 7, 30)
    publisher = RecordingPublisher()
    relay = Relay(store, publisher, batch_size=10, max_in_flight=40)
    assert await relay.catch_up() == Position(0, 210)
    assert [m.position.sequence for m in publisher.taken] == list(range(1, 211))
    assert publisher.most_in_flight <= 40
    assert publisher.most_in_flight > 10  # batches overlap: a pipeline, not stop-and-wait
    row = await relay.checkpoints.get(relay.name)
    assert row is not None
    assert row.position == Position(0, 210)
    assert row.published == 210


async def test_a_failed_batch_is_resent_from_the_checkpoint() -> None:
    store = MemoryEngine()
    await _fill(store, 5, 20)
    publisher = RecordingPublisher(fail_at=4)
    relay = Relay(store, publisher, batch_size=10, max_in_flight=30)
    await relay.catch_up()
    assert publisher.connects == 2
    assert relay.status.reconnects == 1
    versions = _versions(publisher.taken)
    assert versions == {f"order-{s}": list(range(1, 21)) for s in range(5)}
    assert len(publisher.taken) > 100  # the resend repeated what was after the checkpoint


async def test_filtered_relay_moves_its_checkpoint_past_what_it_skips() -> None:
    store = MemoryEngine()
    await _fill(store, 3, 5)
    await store.append("invoice-1", [NewEvent("Sent", b"{}")])
    publisher = RecordingPublisher()
    relay = Relay(store, publisher, categories=["invoice"], batch_size=4, max_in_flight=8)
    assert await relay.catch_up() == Position(0, 16)
    assert [m.stream_id for m in publisher.taken] == ["invoice-1"]
    row = await relay.checkpoints.get(relay.name)
    assert row is not None
    assert row.position == Position(0, 16)


async def test_one_relay_per_destination_the_other_takes_over(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'events.db'}")
    await _fill(store, 2, 3)
    first, second = RecordingPublisher(), RecordingPublisher()
    a = Relay(store, first, lease_ttl=1.0, owner="a")
    b = Relay(store, second, lease_ttl=1.0, owner="b")
    running_a = asyncio.create_task(a.run())
    try:
        await until(lambda: len(first.taken) == 6)
        running_b = asyncio.create_task(b.run())
        await asyncio.sleep(1.5)  # a renews its lease while idle: b keeps waiting
        assert not b.status.holding
        await store.append("order-0", [NewEvent("Placed", b"{}")])
        await until(lambda: len(first.taken) == 7)
        running_a.cancel()  # releases the lease on the way out
        with contextlib.suppress(asyncio.CancelledError):
            await running_a
        await until(lambda: b.status.holding, within=5)
        await store.append("order-1", [NewEvent("Placed", b"{}")])
        await until(lambda: len(second.taken) == 1, within=5)
        assert second.taken[0].position == Position(0, 8)  # from a's checkpoint on
        running_b.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running_b
    finally:
        running_a.cancel()
        await a.close()
        await b.close()
        await store.close()


async def test_deprecated_events_are_skipped_and_a_bad_one_stops_the_relay() -> None:
    from facta import Codec, EventDecodeError
    from tests.evolution import wallet_v3

    codec = Codec()
    codec.register_aggregate(wallet_v3.Wallet())
    store = MemoryEngine()
    await store.append("wallet-1", [NewEvent("WalletFrozen", b'{"reason":"x"}')])
    await store.append("wallet-1", [NewEvent("MoneyDeposited", b'{"amount":"1"}', 2)])
    publisher = RecordingPublisher()
    relay = Relay(store, publisher, codec=codec, batch_size=1, max_in_flight=1)
    assert await relay.catch_up() == Position(0, 2)
    assert [m.headers["event-type"] for m in publisher.taken] == ["MoneyDeposited"]

    await store.append("wallet-1", [NewEvent("MoneyDeposited", b'{"cents":"x"}', 1)])
    with pytest.raises(EventDecodeError):
        await relay.catch_up()
    row = await relay.checkpoints.get(relay.name)
    assert row is not None
    assert row.position == Position(0, 2)  # stays before the event it cannot publish
    assert row.owner is None
