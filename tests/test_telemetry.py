"""Spans, metrics and JSON logs of the command side, projections and the relay.

Spans go to the SDK's in-memory exporter and metrics to its in-memory reader, handed to
facta with ``instrument`` (and taken back after each test).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler
from opentelemetry.trace import StatusCode

from facta import Application, WrongExpectedVersion
from facta.examples.bank.domain import Account, AccountError, Deposit, OpenAccount, Withdraw
from facta.examples.bank.read_model import AccountsProjection
from facta.observability import configure_logging, instrument, log_context, tracing_on
from facta.observability import logging as facta_logging
from facta.observability import metrics as facta_metrics
from facta.projections import ProjectionRunner
from facta.store.memory import MemoryEngine
from tests.conftest import service_missing

ACCOUNT = Account()


class Otel:
    """What the code under test recorded."""

    def __init__(self, spans: InMemorySpanExporter, metrics: InMemoryMetricReader) -> None:
        self.exporter = spans
        self.reader = metrics

    def spans(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name == name]

    def points(self, metric: str) -> dict[tuple[tuple[str, Any], ...], float]:
        found: dict[tuple[tuple[str, Any], ...], float] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        for point in item.data.data_points:
                            key = tuple(sorted((point.attributes or {}).items()))
                            found[key] = getattr(point, "value", None) or getattr(point, "count", 0)
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrument(tracer_provider, meter_provider)
    yield Otel(exporter, reader)
    instrument(None, None)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_without_a_provider_nothing_is_recorded_and_metadata_stays_plain() -> None:
    assert not tracing_on()
    app = Application(MemoryEngine())
    await app.execute(ACCOUNT, "a", OpenAccount("Ann", Decimal(1)))
    [record] = await app.store.read_stream("account-a")
    assert set(record.meta) == {"correlation_id", "causation_id"}


async def test_a_command_spans_execute_load_and_append_and_stamps_its_events(otel: Otel) -> None:
    app = Application(MemoryEngine(), cache_size=0)
    await app.execute(ACCOUNT, "a", OpenAccount("Ann", Decimal(10)), command_id="cmd-1")
    await app.execute(ACCOUNT, "a", Deposit(Decimal(5)), metadata={"user": "u1"})

    first, second = otel.spans("facta.execute")
    assert attributes(first) == {
        "facta.aggregate": "account",
        "facta.stream": "account-a",
        "facta.command": "OpenAccount",
        "facta.correlation_id": "cmd-1",
        "facta.causation_id": "cmd-1",
        "facta.command_id": "cmd-1",
        "facta.version": 1,
        "facta.events": 1,
        "facta.outcome": "accepted",
        "facta.retries": 0,
    }
    assert attributes(second)["facta.version"] == 2
    # OpenAccount is a creation command: appended unread, so only the deposit loads.
    loads = otel.spans("facta.load")
    assert [attributes(s)["facta.events_replayed"] for s in loads] == [1]
    assert [attributes(s)["facta.snapshot_used"] for s in loads] == [False]
    appends = otel.spans("facta.append")
    assert [attributes(s)["facta.events"] for s in appends] == [1, 1]
    for execute, append in zip((first, second), appends, strict=True):
        assert append.parent is not None
        assert execute.context is not None
        assert append.parent.span_id == execute.context.span_id

    records = await app.store.read_stream("account-a")
    for execute, record in zip((first, second), records, strict=True):
        assert execute.context is not None
        trace_id, span_id = record.meta["traceparent"].split("-")[1:3]
        assert (int(trace_id, 16), int(span_id, 16)) == (
            execute.context.trace_id,
            execute.context.span_id,
        )
    assert records[1].meta["user"] == "u1"  # the caller's keys are kept
    assert otel.points("facta.application.commands") == {
        (("aggregate", "account"), ("outcome", "accepted")): 2
    }
    assert sum(otel.points("facta.append.duration").values()) == 2


class AskedSampler(Sampler):
    """The SDK's ParentBased sampler with roots never sampled (as a 1% ratio does 99 times
    in 100), noting the name of every span it is asked about: a span facta skips never
    reaches it."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.inner = ParentBased(ALWAYS_OFF)

    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any) -> Any:
        self.asked.append(name)
        return self.inner.should_sample(parent_context, trace_id, name, *args)

    def get_description(self) -> str:
        return "asked"


async def test_under_an_unsampled_span_facta_starts_no_spans_of_its_own() -> None:
    sampler = AskedSampler()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    instrument(provider, meters)
    try:
        app = Application(MemoryEngine(), cache_size=0)
        # A command that is its own root: its span is not sampled, so neither its load nor
        # its append asks for one.
        await app.execute(ACCOUNT, "a", OpenAccount("Ann", Decimal(10)))
        assert sampler.asked == ["facta.execute"]
        # Under an unsampled request span: not even the command's span.
        with provider.get_tracer("test").start_as_current_span("request"):
            await app.execute(ACCOUNT, "a", Deposit(Decimal(5)))
        assert sampler.asked == ["facta.execute", "request"]
        assert exporter.get_finished_spans() == ()
        [_, deposit] = await app.store.read_stream("account-a")
        assert "traceparent" not in deposit.meta
        # Unsampled, the metrics are still whole: both commands and both appends.
        recorded = Otel(exporter, reader)
        assert recorded.points("facta.application.commands") == {
            (("aggregate", "account"), ("outcome", "accepted")): 2
        }
        assert sum(recorded.points("facta.append.duration").values()) == 2
    finally:
        instrument(None, None)
        provider.shutdown()
        meters.shutdown()


async def test_loading_from_a_snapshot_says_so(otel: Otel) -> None:
    app = Application(MemoryEngine(), cache_size=0)
    await app.execute(ACCOUNT, "s", OpenAccount("Sam", Decimal(0)))
    for _ in range(Account.snapshot_every or 0):
        await app.execute(ACCOUNT, "s", Deposit(Decimal(1)))
    await app.drain()
    otel.exporter.clear()
    await app.load(ACCOUNT, "s")
    [load] = otel.spans("facta.load")
    assert attributes(load)["facta.snapshot_used"] is True
    assert attributes(load)["facta.snapshot_version"] == Account.snapshot_every
    assert attributes(load)["facta.events_replayed"] == 1


async def test_conflicts_retries_and_rejections_are_counted(otel: Otel) -> None:
    store = MemoryEngine()
    one, other = Application(store), Application(store)  # two processes, in effect
    await one.execute(ACCOUNT, "c", OpenAccount("Cy", Decimal(10)))  # one caches version 1
    await other.execute(ACCOUNT, "c", Deposit(Decimal(1)))  # version 2
    await one.execute(ACCOUNT, "c", Deposit(Decimal(1)))  # stale cache: conflict, retried
    await other.execute(ACCOUNT, "c", Deposit(Decimal(1)))  # the same the other way
    with pytest.raises(AccountError):
        await one.execute(ACCOUNT, "c", Withdraw(Decimal(1000)))
    with pytest.raises(WrongExpectedVersion):
        await one.execute(ACCOUNT, "c", Deposit(Decimal(1)), expected_version=1)

    commands = otel.points("facta.application.commands")
    assert commands == {
        (("aggregate", "account"), ("outcome", "accepted")): 4,
        (("aggregate", "account"), ("outcome", "rejected")): 1,
        (("aggregate", "account"), ("outcome", "conflict")): 1,
    }
    assert otel.points("facta.application.conflicts") == {(("aggregate", "account"),): 2}
    assert otel.points("facta.application.retries") == {(("aggregate", "account"),): 2}

    by_outcome = {attributes(s)["facta.outcome"]: s for s in otel.spans("facta.execute")}
    assert attributes(by_outcome["accepted"])["facta.retries"] in (0, 1)
    assert by_outcome["rejected"].status.status_code is StatusCode.UNSET  # not a failure
    assert by_outcome["conflict"].status.status_code is StatusCode.ERROR
    retried = [s for s in otel.spans("facta.execute") if attributes(s)["facta.retries"] == 1]
    assert len(retried) == 2
    refused = [s for s in otel.spans("facta.append") if attributes(s).get("facta.conflict")]
    assert len(refused) == 2


async def test_a_projection_batch_continues_the_commands_trace_and_reports_its_lag(
    otel: Otel,
) -> None:
    store = MemoryEngine()
    app = Application(store)
    await app.execute(ACCOUNT, "p", OpenAccount("Pat", Decimal(3)))
    await app.execute(ACCOUNT, "q", OpenAccount("Quin", Decimal(4)))
    runner = ProjectionRunner(store, [AccountsProjection()], app=app)
    try:
        await runner.catch_up()
    finally:
        await runner.close()

    first, second = otel.spans("facta.execute")
    [batch] = otel.spans("facta.projection.batch")
    assert first.context is not None
    assert second.context is not None
    assert batch.context is not None
    assert batch.context.trace_id == first.context.trace_id  # continues the first event's
    assert [link.context.trace_id for link in batch.links] == [second.context.trace_id]
    assert attributes(batch)["facta.projection"] == "accounts"
    assert attributes(batch)["facta.batch.events"] == 2
    assert otel.points("facta.projection.lag.events") == {(("projection", "accounts"),): 0}
    [seconds] = otel.points("facta.projection.lag").values()
    assert 0 <= seconds < 5


async def test_a_stopped_policy_and_a_parked_event_show_in_the_metrics(otel: Otel) -> None:
    from tests.projections.test_policies import Marker, StoppingMarker, aim

    Marker.refused, Marker.attempts = [], {}
    store = MemoryEngine()
    app = Application(store)
    await aim(app, "a", "bug")
    runner = ProjectionRunner(store, [Marker(), StoppingMarker()], app=app)
    try:
        await runner.catch_up()
    finally:
        await runner.close()
    assert otel.points("facta.projection.parked") == {(("projection", "marker"),): 1}
    assert otel.points("facta.projection.stopped") == {(("projection", "stopping_marker"),): 1}


async def test_a_relay_batch_continues_the_trace_and_reports_its_lag(otel: Otel) -> None:
    nats = pytest.importorskip("nats")
    from facta.relay import Relay
    from facta.relay.nats import NatsPublisher

    url = os.environ.get("FACTA_TEST_NATS", "nats://127.0.0.1:4222")
    try:
        connection = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
    except Exception:
        service_missing(f"NATS is not reachable at {url}")
    stream = f"OTEL_{uuid.uuid4().hex[:10].upper()}"
    store = MemoryEngine()
    app = Application(store)
    await app.execute(ACCOUNT, "r", OpenAccount("Ray", Decimal(1)))
    relay = Relay(store, NatsPublisher(url, stream=stream, subject=stream.lower()))
    try:
        await relay.catch_up()
    finally:
        await relay.close()
        with contextlib.suppress(Exception):
            await connection.jetstream().delete_stream(stream)
        await connection.close()
    [execute] = otel.spans("facta.execute")
    [batch] = otel.spans("facta.relay.batch")
    assert execute.context is not None
    assert batch.context is not None
    assert batch.context.trace_id == execute.context.trace_id
    assert attributes(batch)["facta.relay"] == relay.name
    [seconds] = otel.points("facta.relay.lag").values()
    assert 0 <= seconds < 5


class _Noisy(Account):
    """An account whose decide logs (only a test does that: decide is pure)."""

    def decide(self, state: Any, command: Any) -> Any:
        logging.getLogger("tests.noisy").info("deciding", extra={"amount": "5"})
        return super().decide(state, command)


async def test_json_log_lines_carry_the_commands_ids_and_trace(otel: Otel) -> None:
    out = io.StringIO()
    handler = configure_logging(logging.INFO, stream=out, logger="tests.noisy")
    try:
        app = Application(MemoryEngine())
        await app.execute(_Noisy(), "l", OpenAccount("Lee", Decimal(1)), command_id="k-1")
        assert log_context() == {}  # unbound after the command
    finally:
        logging.getLogger("tests.noisy").removeHandler(handler)
        facta_logging.enable(False)
    line = msgspec.json.decode(out.getvalue().splitlines()[0])
    [execute] = otel.spans("facta.execute")
    assert execute.context is not None
    assert line["message"] == "deciding"
    assert line["level"] == "INFO"
    assert line["amount"] == "5"
    assert (line["stream"], line["correlation_id"], line["causation_id"]) == (
        "account-l",
        "k-1",
        "k-1",
    )
    assert line["command_id"] == "k-1"
    assert line["trace_id"] == format(execute.context.trace_id, "032x")
    assert line["span_id"] == format(execute.context.span_id, "016x")


async def test_the_service_serves_facta_metrics_on_its_prometheus_page(tmp_path: Any) -> None:
    from litestar.testing import AsyncTestClient

    from facta.examples.bank.service import create_app

    app = create_app(f"sqlite:///{tmp_path / 'm.db'}", projections=False)
    async with AsyncTestClient(app) as client:
        opened = await client.post(
            "/accounts/m1", json={"type": "OpenAccount", "owner": "Mo", "initial_balance": 1}
        )
        assert opened.status_code == 200
        page = (await client.get("/metrics")).text
    assert 'facta_application_commands_total{aggregate="account"' in page
    assert "facta_append_duration_seconds_bucket" in page
    assert "facta_http_requests_total" in page  # prometheus-client's own, beside them
    await asyncio.sleep(0)


async def test_log_lines_in_a_projection_batch_name_the_projection(otel: Otel) -> None:
    out = io.StringIO()
    handler = configure_logging(logging.INFO, stream=out, logger="tests.projection")

    class _Logging(AccountsProjection):
        async def handle(self, envelope: Any, session: Any) -> None:
            logging.getLogger("tests.projection").info("handling %s", envelope.recorded.type)
            await super().handle(envelope, session)

    store = MemoryEngine()
    app = Application(store)
    await app.execute(ACCOUNT, "j", OpenAccount("Jo", Decimal(1)))
    runner = ProjectionRunner(store, [_Logging()], app=app)
    try:
        await runner.catch_up()
    finally:
        await runner.close()
        logging.getLogger("tests.projection").removeHandler(handler)
        facta_logging.enable(False)
    line = msgspec.json.decode(out.getvalue().splitlines()[0])
    [batch] = otel.spans("facta.projection.batch")
    assert batch.context is not None
    assert line["message"] == "handling AccountOpened"
    assert line["projection"] == "accounts"
    assert line["trace_id"] == format(batch.context.trace_id, "032x")


def test_the_http_edge_adds_no_tracing_middleware_without_a_provider() -> None:
    from facta.observability.http import tracing_middleware

    assert not tracing_on()
    assert tracing_middleware() == []


def test_the_http_edge_adds_litestars_tracing_middleware_with_a_provider(otel: Otel) -> None:
    from facta.observability.http import tracing_middleware

    [middleware] = tracing_middleware()
    assert middleware.kwargs["config"].tracer_provider is not None


async def test_append_latencies_wait_and_every_collection_sees_them_all(otel: Otel) -> None:
    app = Application(MemoryEngine())
    await app.execute(ACCOUNT, "a", OpenAccount("Ann", Decimal(1)))
    latencies = facta_metrics._instruments.append_latencies
    assert len(latencies.waiting) == 1  # recorded later, in a run...
    assert sum(otel.points("facta.append.duration").values()) == 1  # ...or when collected
    assert not latencies.waiting

    for _ in range(latencies.RUN + 10):
        await app.execute(ACCOUNT, "a", Deposit(Decimal(1)))
    assert len(latencies.waiting) == 10  # a full run was recorded on its own
    assert sum(otel.points("facta.append.duration").values()) == latencies.RUN + 11


def test_append_latencies_recorded_from_threads_while_collected_are_all_counted(
    otel: Otel,
) -> None:
    def appends() -> None:
        for _ in range(5_000):
            facta_metrics.append_done(0.001)

    writers = [threading.Thread(target=appends) for _ in range(3)]
    for writer in writers:
        writer.start()
    while any(writer.is_alive() for writer in writers):
        otel.reader.get_metrics_data()  # collects (and drains) while the writers add
    for writer in writers:
        writer.join()
    assert sum(otel.points("facta.append.duration").values()) == 15_000
