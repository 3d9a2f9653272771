"""What a service that is not facta reads from the relay, with each broker's plain client
(pika for RabbitMQ, nats-py for NATS): message id = event id, the event type, the envelope
headers, ``recorded-at`` in ISO 8601, the correlation and causation ids, and the
``traceparent`` of the command that caused the event, on the fast path and the public one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import nats
import pika
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from facta import Application, NewEvent, RecordedEvent
from facta.examples.bank.domain import Account, Deposit, OpenAccount
from facta.observability import instrument
from facta.relay import Relay
from facta.store.memory import MemoryEngine
from tests.relay.conftest import NATS_URL, RABBITMQ_URL, Harness, NatsHarness, RabbitMQHarness

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """An SDK that records every span in memory, for facta (taken back after the test)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(provider)
    yield exporter
    instrument(None)
    provider.shutdown()


async def _log(store: MemoryEngine) -> list[RecordedEvent]:
    """Two commands (traced), then an event appended directly (no trace) whose stream id and
    type hold characters a routing key or subject cannot."""
    app = Application(store)
    await app.execute(Account(), "w1", OpenAccount("Nia", Decimal(1)))
    await app.execute(
        Account(), "w1", Deposit(Decimal(2)), metadata={"correlation_id": "corr-7", "k": 1}
    )
    await store.append("account.x-7", [NewEvent("Renamed.Type", b'{"a":"\xc3\xa9"}')])
    return await store.read_all()


def _read_rabbitmq(queue: str, count: int) -> list[dict[str, Any]]:
    """``count`` messages of ``queue``, as pika sees them."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        found = []
        for _ in range(count):
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            assert method is not None, f"only {len(found)} messages in {queue}"
            found.append(
                {
                    "id": properties.message_id,
                    "type": properties.type,
                    "correlation": properties.correlation_id,
                    "content_type": properties.content_type,
                    "persistent": properties.delivery_mode == 2,
                    "topic": method.routing_key,
                    "headers": properties.headers,
                    "body": body,
                }
            )
        assert channel.basic_get(queue, auto_ack=True)[0] is None  # nothing more
        return found
    finally:
        connection.close()


def _bind_rabbitmq(harness: RabbitMQHarness) -> None:
    """The queue of another service, declared and bound with pika before the relay runs."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        channel.exchange_declare(harness.exchange, "topic", durable=True)
        channel.queue_declare(harness.queue, durable=True)
        channel.queue_bind(harness.queue, harness.exchange, "#")
    finally:
        connection.close()


async def _read_nats(harness: NatsHarness, count: int) -> list[dict[str, Any]]:
    """The stream's first ``count`` messages, as nats-py's JetStream API gives them."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        assert (await js.stream_info(harness.stream)).state.messages == count
        found = []
        for sequence in range(1, count + 1):
            message = await js.get_msg(harness.stream, sequence)
            headers = dict(message.headers or {})
            found.append(
                {
                    "id": headers["Nats-Msg-Id"],
                    "type": headers["event-type"],
                    "correlation": headers.get("correlation-id"),
                    "topic": str(message.subject).removeprefix(f"{harness.subject}."),
                    "headers": headers,
                    "body": message.data,
                }
            )
        return found
    finally:
        await nc.close()


async def test_a_plain_client_reads_the_documented_message(
    broker: Harness, spans: InMemorySpanExporter
) -> None:
    store = MemoryEngine()
    events = await _log(store)
    if isinstance(broker, RabbitMQHarness):
        await asyncio.to_thread(_bind_rabbitmq, broker)
    relay = Relay(store, broker.publisher(), name=broker.relay_name)
    try:
        await relay.catch_up()
    finally:
        await relay.close()
    if isinstance(broker, RabbitMQHarness):
        received = await asyncio.to_thread(_read_rabbitmq, broker.queue, len(events))
    else:
        assert isinstance(broker, NatsHarness)
        received = await _read_nats(broker, len(events))

    executed: list[ReadableSpan] = [
        s for s in spans.get_finished_spans() if s.name == "facta.execute"
    ]
    assert len(executed) == 2
    for event, message, span in zip(events, received, [*executed, None], strict=True):
        headers = message["headers"]
        assert message["id"] == headers["event-id"] == event.event_id
        assert message["type"] == headers["event-type"] == event.type
        assert message["body"] == event.data
        assert headers["stream-id"] == event.stream_id
        assert headers["stream-version"] == str(event.version)
        assert headers["position"] == str(event.position)
        assert headers["schema-version"] == str(event.schema_version)
        assert headers["metadata"] == event.metadata.decode()
        recorded_at = datetime.fromisoformat(headers["recorded-at"])
        assert headers["recorded-at"].endswith("Z")
        assert recorded_at.utcoffset() == timedelta(0)
        assert recorded_at.timestamp() == pytest.approx(event.recorded_at, abs=1e-6)
        if isinstance(broker, RabbitMQHarness):
            assert message["content_type"] == "application/json"
            assert message["persistent"]
        if span is None:  # appended without a command, nor a trace
            assert message["topic"] == "account_x.Renamed_Type"
            assert "traceparent" not in headers
            assert "correlation-id" not in headers
            continue
        assert message["topic"] == f"account.{event.type}"
        assert message["correlation"] == headers["correlation-id"] == event.meta["correlation_id"]
        assert headers["causation-id"] == event.meta["causation_id"]
        # The consumer continues the trace of the command that caused the event.
        context = span.context
        assert context is not None
        version, trace_id, parent_id, flags = headers["traceparent"].split("-")
        assert version == "00"
        assert int(flags, 16) & 1  # sampled
        assert trace_id == format(context.trace_id, "032x")
        assert parent_id == format(context.span_id, "016x")
    assert received[1]["correlation"] == "corr-7"
