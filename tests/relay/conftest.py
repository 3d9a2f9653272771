"""Brokers for the relay tests: the machine's real RabbitMQ and NATS JetStream.

Each test gets its own exchange and queues (RabbitMQ) or streams (NATS), deleted afterwards.
A harness can also drop the relay's connection from the broker's side: ``rabbitmqctl
close_connection`` for RabbitMQ, a restart of nats-server for NATS (it has no monitoring
port to kick one client), which is always running again when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import aio_pika
import nats
import pytest

from facta import Engine, NewEvent, open_store
from facta.relay._fastpath import CHECKED_VERSIONS, PUBLIC_API
from facta.relay.nats import NatsConsumer, NatsPublisher
from facta.relay.publisher import Publisher
from facta.relay.rabbitmq import RabbitMQConsumer, RabbitMQPublisher
from facta.results import EventEnvelope
from tests.conftest import service_missing

RABBITMQ_URL = os.environ.get("FACTA_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("FACTA_TEST_NATS", "nats://127.0.0.1:4222")
NATS_START = [
    "start-stop-daemon",
    "--start",
    "--oknodo",
    "--background",
    "--exec",
    "/usr/sbin/nats-server",
    "--",
    "-a",
    "127.0.0.1",
    "-p",
    "4222",
    "-js",
    "-sd",
    "/var/lib/nats-server",
    "-l",
    "/var/log/nats-server.log",
]


class Consumer(Protocol):
    dispatcher: Any
    connected: asyncio.Event

    async def run(self) -> None: ...


class Harness(Protocol):
    """One broker, with names of its own for one test, and the path its publisher takes
    (``public_api``: the client library's public API, not the fast path)."""

    kind: str
    relay_name: str
    public_api: bool

    def publisher(self) -> Publisher: ...

    def environment(self) -> dict[str, str]:
        """The environment of a ``facta relay run`` process on the same path."""
        ...

    def fast_path_expected(self) -> bool:
        """Whether its publisher should take the fast path here."""
        ...

    def relay_url(self) -> str: ...

    def consumer(
        self, handler: Callable[[EventEnvelope[Any]], Awaitable[None]], **options: Any
    ) -> Consumer: ...

    async def drop_relay_connection(self) -> None: ...

    async def dead_letters(self) -> list[tuple[bytes, dict[str, Any]]]: ...

    async def cleanup(self) -> None: ...


class RabbitMQHarness:
    kind = "rabbitmq"
    package = "aiormq"

    def __init__(self, public_api: bool = False) -> None:
        self.public_api = public_api
        tag = uuid.uuid4().hex[:10]
        self.exchange = f"test-{tag}"
        self.queue = f"test-{tag}"
        self.relay_name = f"facta-relay-{tag}"
        self.consumer_name = f"facta-consumer-{tag}"

    def publisher(self) -> RabbitMQPublisher:
        return RabbitMQPublisher(
            RABBITMQ_URL, exchange=self.exchange, name=self.relay_name, public_api=self.public_api
        )

    def environment(self) -> dict[str, str]:
        return relay_environment(self.public_api)

    def fast_path_expected(self) -> bool:
        return not self.public_api and fast_path_checked(self.package)

    def relay_url(self) -> str:
        return f"{RABBITMQ_URL}?exchange={self.exchange}&name={self.relay_name}"

    def consumer(self, handler: Any, **options: Any) -> RabbitMQConsumer:
        return RabbitMQConsumer(
            RABBITMQ_URL,
            self.queue,
            handler,
            exchange=self.exchange,
            name=self.consumer_name,
            **options,
        )

    async def drop_relay_connection(self) -> None:
        """Close the relay's and the consumer's connections from the broker
        (``rabbitmqctl close_connection``), as a restart of nats-server does for NATS."""
        if shutil.which("rabbitmqctl") is None:
            service_missing("rabbitmqctl is not installed: cannot close a connection")
        names = (self.relay_name, self.consumer_name)

        def close() -> int:
            listing = subprocess.run(
                ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
            pids = [
                line.split("\t")[0]
                for line in listing.splitlines()
                if any(f'"{name}"' in line for name in names)
            ]
            for pid in pids:
                subprocess.run(
                    ["rabbitmqctl", "-q", "close_connection", pid, "test: dropped"],
                    capture_output=True,
                    timeout=30,
                )
            return len(pids)

        closed = await asyncio.to_thread(close)
        assert closed == 2, f"found {closed} connections named {names}"

    async def dead_letters(self) -> list[tuple[bytes, dict[str, Any]]]:
        connection = await aio_pika.connect(RABBITMQ_URL)
        found = []
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(f"{self.queue}.dlq", durable=True)
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                found.append((message.body, dict(message.headers)))
        finally:
            await connection.close()
        return found

    async def cleanup(self) -> None:
        connection = await aio_pika.connect(RABBITMQ_URL)
        try:
            channel = await connection.channel()
            for queue in (self.queue, f"{self.queue}.dlq"):
                await channel.queue_delete(queue)
            await channel.exchange_delete(self.exchange)
        finally:
            await connection.close()


class NatsHarness:
    kind = "nats"
    package = "nats-py"

    def __init__(self, public_api: bool = False) -> None:
        self.public_api = public_api
        tag = uuid.uuid4().hex[:10]
        self.stream = f"TEST_{tag}"
        self.subject = f"test{tag}"
        self.relay_name = f"facta-relay-{tag}"

    def publisher(self) -> NatsPublisher:
        return NatsPublisher(
            NATS_URL,
            stream=self.stream,
            subject=self.subject,
            name=self.relay_name,
            public_api=self.public_api,
        )

    def environment(self) -> dict[str, str]:
        return relay_environment(self.public_api)

    def fast_path_expected(self) -> bool:
        return not self.public_api and fast_path_checked(self.package)

    def relay_url(self) -> str:
        return f"{NATS_URL}?stream={self.stream}&subject={self.subject}&name={self.relay_name}"

    def consumer(self, handler: Any, **options: Any) -> NatsConsumer:
        return NatsConsumer(
            NATS_URL,
            f"durable-{self.subject}",
            handler,
            stream=self.stream,
            subject=self.subject,
            **options,
        )

    async def drop_relay_connection(self) -> None:
        """Restart nats-server: every client's connection drops from the server's side."""
        await restart_nats()

    async def stream_messages(self) -> int:
        nc = await nats.connect(NATS_URL)
        try:
            info = await nc.jetstream().stream_info(self.stream)
            return int(info.state.messages)
        finally:
            await nc.close()

    async def dead_letters(self) -> list[tuple[bytes, dict[str, Any]]]:
        nc = await nats.connect(NATS_URL)
        found = []
        try:
            js = nc.jetstream()
            subscription = await js.pull_subscribe(
                f"{self.subject}-dlq.>", stream=f"{self.stream}_DLQ"
            )
            with contextlib.suppress(nats.errors.TimeoutError):
                for message in await subscription.fetch(100, timeout=1.0):
                    found.append((message.data, dict(message.headers or {})))
        finally:
            await nc.close()
        return found

    async def cleanup(self) -> None:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            for stream in (self.stream, f"{self.stream}_DLQ"):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(stream)
        finally:
            await nc.close()


def fast_path_checked(package: str) -> bool:
    """Whether the installed ``package`` is the version its fast path was checked against
    (with another, the publishers rightly take the public API)."""
    return (
        os.environ.get(PUBLIC_API, "") in ("", "0")
        and metadata.version(package) == CHECKED_VERSIONS[package]
    )


def relay_environment(public_api: bool) -> dict[str, str]:
    """This process's environment for a relay subprocess, on the fast path or the public
    API's, with no broker URL inherited from the developer's shell."""
    environment = {k: v for k, v in os.environ.items() if k not in (PUBLIC_API, "FACTA_BROKER")}
    if public_api:
        environment[PUBLIC_API] = "1"
    return environment


def _nats_pid() -> int | None:
    # A test that needs a nats-server of its own runs a copy of the binary (see
    # test_refusals.py), so that neither this nor start-stop-daemon takes it for this one.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "exe") == "/usr/sbin/nats-server":
                    return int(entry.name)
    return None


async def _nats_answers() -> bool:
    try:
        nc = await nats.connect(NATS_URL, connect_timeout=1, allow_reconnect=False)
    except Exception:
        return False
    try:
        await nc.jetstream().account_info()
        return True
    except Exception:
        return False
    finally:
        await nc.close()


async def restart_nats() -> None:
    """Stop nats-server and start it again with the machine's own command; it is running
    again (JetStream answering) when this returns, or the test fails."""
    pid = _nats_pid()
    if pid is None or shutil.which("start-stop-daemon") is None or os.geteuid() != 0:
        service_missing("cannot restart nats-server here (needs root and the local server)")
    assert pid is not None
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _nats_pid() == pid:
            assert time.monotonic() < deadline, "nats-server did not stop"
            await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(subprocess.run, NATS_START, check=False, timeout=30)
        deadline = time.monotonic() + 30
        while not await _nats_answers():
            assert time.monotonic() < deadline, "nats-server did not come back"
            await asyncio.sleep(0.1)


async def _rabbitmq_up() -> bool:
    try:
        connection = await aio_pika.connect(RABBITMQ_URL, timeout=3)
    except Exception:
        return False
    await connection.close()
    return True


async def _harness(param: str) -> Harness:
    kind, _, path = param.partition("-")
    if kind == "rabbitmq":
        if not await _rabbitmq_up():
            service_missing(f"RabbitMQ is unreachable at {RABBITMQ_URL}")
        return RabbitMQHarness(public_api=path == "public")
    if not await _nats_answers():
        service_missing(f"NATS JetStream is unreachable at {NATS_URL}")
    return NatsHarness(public_api=path == "public")


@pytest.fixture(params=["rabbitmq", "nats", "rabbitmq-public", "nats-public"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Each broker in turn, its publisher on the fast path and then on its client library's
    public API (what runs with any other library version), with names of this test's own;
    cleaned up afterwards."""
    harness = await _harness(request.param)
    yield harness
    await harness.cleanup()


@pytest.fixture(params=["rabbitmq", "nats"])
async def plain_broker(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Each broker in turn, on the default path, with names of this test's own."""
    harness = await _harness(request.param)
    yield harness
    await harness.cleanup()


class Received:
    """What a consumer's handler saw: every stream's versions in the order handled."""

    def __init__(self) -> None:
        self.versions: dict[str, list[int]] = defaultdict(list)
        self.count = 0
        self.changed = asyncio.Event()

    async def handle(self, envelope: EventEnvelope[Any]) -> None:
        recorded = envelope.recorded
        self.versions[recorded.stream_id].append(recorded.version)
        self.count += 1
        self.changed.set()

    async def wait_for(self, count: int, within: float = 120.0) -> None:
        # A bound for a relay that hangs, not a speed check: on a CI machine whose disk had
        # slowed, the 10,000 events of the public-API publisher took over 30 s (6 s here).
        deadline = time.monotonic() + within
        while self.count < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"received {self.count} of {count} events"
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))

    def assert_complete(self, streams: int, per_stream: int) -> None:
        """Every event exactly once, and each stream's versions in order."""
        assert len(self.versions) == streams
        for stream, versions in self.versions.items():
            assert versions == list(range(1, per_stream + 1)), stream


async def fill(path: Path, streams: int, per_stream: int, *, chunk: int = 10) -> Engine:
    """A SQLite store holding ``streams * per_stream`` events, streams interleaved in the log."""
    store = await open_store(f"sqlite:///{path}", synchronous="NORMAL")
    for start in range(0, per_stream, chunk):
        await asyncio.gather(
            *(
                store.append(
                    f"account-{s}",
                    [
                        NewEvent(
                            "MoneyDeposited",
                            b'{"amount":"1.00"}',
                            metadata=b'{"correlation_id":"c-%d","causation_id":"k-%d"}'
                            % (s, start),
                        )
                        for _ in range(min(chunk, per_stream - start))
                    ],
                )
                for s in range(streams)
            )
        )
    return store


async def until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    """Return once ``predicate()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[Consumer]:
    """``consumer`` running in a task until the block ends."""
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(consumer.connected.wait(), 15)
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
