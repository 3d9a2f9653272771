"""One trace from an HTTP request to everything the command caused.

The bank service runs in-process (Litestar's AsyncTestClient, real SQLite store, the real
transfer saga on a real ProjectionRunner): a subprocess could not hand its spans to this
test's in-memory exporter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from facta.examples.bank.service import create_app
from facta.observability import instrument


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(provider)
    yield exporter
    instrument(None)
    provider.shutdown()


def _attr(span: ReadableSpan, key: str) -> object:
    return (span.attributes or {}).get(key)


async def test_a_transfer_request_and_all_it_caused_form_one_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'bank.db'}")
    async with AsyncTestClient(app) as client:
        for account in ("alice", "bob"):
            opened = await client.post(
                f"/accounts/{account}",
                json={"type": "OpenAccount", "owner": account, "initial_balance": 100},
            )
            assert opened.status_code == 200, opened.text
        spans.clear()
        requested = await client.post(
            "/transfers/t-1",
            json={"type": "RequestTransfer", "source": "alice", "target": "bob", "amount": 30},
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        )
        assert requested.status_code == 200, requested.text
        for _ in range(200):
            transfer = (await client.get("/transfers/t-1")).json()
            if transfer["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        assert transfer["status"] == "completed"
        history = (await client.get("/transfers/t-1/events")).json()
        bob = (await client.get("/accounts/bob")).json()
    assert bob["balance"] == 130

    # The client's traceparent is continued: the whole chain is in its trace.
    trace_id = 0x0AF7651916CD43DD8448EB211C80319C
    finished = spans.get_finished_spans()
    mine = [s for s in finished if s.context is not None and s.context.trace_id == trace_id]
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in mine:
        by_name.setdefault(span.name, []).append(span)

    http = [s for s in mine if s.name.startswith("POST /transfers")]
    assert len(http) == 1, sorted(by_name)
    executes = by_name["facta.execute"]
    assert {_attr(s, "facta.aggregate") for s in executes} == {"transfer", "account"}
    assert {_attr(s, "facta.outcome") for s in executes} == {"accepted"}
    assert len(by_name["facta.append"]) == len(executes)
    batches = by_name["facta.projection.batch"]
    # The saga's, and the transfers read model's (it follows the same events).
    assert {_attr(s, "facta.projection") for s in batches} == {"transfer_saga", "transfers"}
    saga = [s for s in batches if _attr(s, "facta.projection") == "transfer_saga"]
    inline = by_name["facta.projection.inline"]
    assert {_attr(s, "facta.projection") for s in inline} == {"accounts"}

    # Every span hangs off another span of the trace, up to the client's.
    ids = {s.context.span_id for s in mine if s.context is not None}
    for span in mine:
        assert span.parent is not None
        assert span.parent.span_id in ids or span.parent.span_id == 0xB7AD6B7169203331

    # The request's command is the saga's cause; the saga's commands carry its correlation.
    first = next(s for s in executes if _attr(s, "facta.aggregate") == "transfer")
    correlation = _attr(first, "facta.correlation_id")
    assert correlation
    for span in saga:
        assert correlation in (_attr(span, "facta.correlation_ids") or ())  # type: ignore[operator]
    assert {_attr(s, "facta.correlation_id") for s in executes} == {correlation}

    # The events carry the trace context they were written in.
    for event in history:
        traceparent = event["metadata"]["traceparent"]
        assert traceparent.split("-")[1] == format(trace_id, "032x")
    assert msgspec.json.encode(history)  # plain JSON all the way
