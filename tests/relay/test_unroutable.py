"""A message that no queue takes, on RabbitMQ: published ``mandatory``, it comes back, and the
relay stops before it instead of moving its checkpoint past a message nobody got; once a queue
is bound, everything arrives. ``unroutable=drop`` accepts the loss, and says so. On the fast
path and on aio-pika's public API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from facta import (
    NewEvent,
    open_store,
)
from facta.relay import Relay, UnroutableMessage
from facta.store.sqlite import SQLiteEventStore
from tests.conftest import service_missing
from tests.relay.conftest import RABBITMQ_URL, RabbitMQHarness, _rabbitmq_up

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=[False, True], ids=["fast", "public"])
async def rabbitmq(request: pytest.FixtureRequest) -> AsyncIterator[RabbitMQHarness]:
    if not await _rabbitmq_up():
        service_missing(f"RabbitMQ is unreachable at {RABBITMQ_URL}")
    harness = RabbitMQHarness(public_api=request.param)
    yield harness
    await harness.cleanup()
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(f"{harness.queue}.invoices")
    finally:
        await connection.close()


async def _store(path: Path) -> SQLiteEventStore:
    """Ten account events, an invoice event, five account events."""
    store = await open_store(f"sqlite:///{path}")
    for n in range(10):
        await store.append(f"account-{n % 3}", [NewEvent("MoneyDeposited", b"{}")])
    await store.append("invoice-1", [NewEvent("InvoiceSent", b"{}")])
    for n in range(5):
        await store.append(f"account-{n % 3}", [NewEvent("MoneyDeposited", b"{}")])
    return store


async def _bind(exchange: str, queue: str, pattern: str) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        declared = await channel.declare_queue(queue, durable=True)
        await declared.bind(topic, pattern)
    finally:
        await connection.close()


async def _event_ids(queue: str) -> list[str]:
    """The message ids in ``queue``, taken off it."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    ids = []
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)
        while (message := await declared.get(fail=False, no_ack=True)) is not None:
            ids.append(str(message.message_id))
    finally:
        await connection.close()
    return ids


async def test_a_message_no_queue_takes_stops_the_relay_before_it(
    rabbitmq: RabbitMQHarness, tmp_path: Path
) -> None:
    store = await _store(tmp_path / "events.db")
    events = await store.read_all()
    invoice = events[10]
    await _bind(rabbitmq.exchange, rabbitmq.queue, "account.*")  # nobody takes invoices
    # Five at a time, one batch in flight: the batch with the invoice fails as a whole.
    relay = Relay(
        store, rabbitmq.publisher(), name=rabbitmq.relay_name, batch_size=5, max_in_flight=5
    )
    try:
        with pytest.raises(UnroutableMessage) as refused:
            await asyncio.wait_for(relay.catch_up(), 30)
        assert refused.value.event_id == invoice.event_id
        assert refused.value.exchange == rabbitmq.exchange
        assert refused.value.routing_key == "invoice.InvoiceSent"
        assert f"exchange {rabbitmq.exchange!r}" in str(refused.value)
        assert "routing key 'invoice.InvoiceSent'" in str(refused.value)
        assert relay.status.reconnects == 0  # stopped at once: a retry cannot route it
        row = await relay.checkpoints.get(relay.name)
        assert row is not None
        assert row.position == events[9].position  # the batches before it, not past it
        assert row.owner is None

        # Another service binds a queue for invoices: from the checkpoint, everything arrives.
        invoices = f"{rabbitmq.queue}.invoices"
        await _bind(rabbitmq.exchange, invoices, "invoice.*")
        assert await asyncio.wait_for(relay.catch_up(), 30) == events[-1].position
        assert await _event_ids(invoices) == [invoice.event_id]
        accounts = await _event_ids(rabbitmq.queue)
        # At least once: what the failed batch delivered to this queue came again.
        assert sorted(set(accounts)) == sorted(e.event_id for e in events if e is not invoice)
    finally:
        await relay.close()
        await store.close()


async def test_unroutable_drop_accepts_the_loss_and_says_so(
    rabbitmq: RabbitMQHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await _store(tmp_path / "events.db")
    events = await store.read_all()
    await _bind(rabbitmq.exchange, rabbitmq.queue, "account.*")
    publisher = rabbitmq.publisher()
    publisher.unroutable = "drop"
    relay = Relay(store, publisher, name=rabbitmq.relay_name, batch_size=5, max_in_flight=5)
    try:
        with caplog.at_level(logging.INFO, logger="facta.relay"):
            assert await asyncio.wait_for(relay.catch_up(), 30) == events[-1].position
        assert "unroutable=drop, messages no queue takes are dropped" in caplog.text
        assert await _event_ids(rabbitmq.queue) == [
            e.event_id for e in events if e.position != events[10].position
        ]
    finally:
        await relay.close()
        await store.close()
