"""Relay throughput: events per second from a store to a broker, with confirms on.

Each row fills a fresh store (SQLite file or PostgreSQL scratch schema) with ``--events``
events over 1,000 streams, then times ``Relay.catch_up()`` from the start of the log to the
head: every event read, turned into a message, sent, and confirmed by the broker
(RabbitMQ publisher confirms with a durable queue bound, so messages are persisted and
routed; JetStream acks from a file-backed stream). Run: ``python -m benchmarks.relay``.

Besides events/s (wall clock), each row gives the CPU time per event of the relay's process
and of the broker's server process (read from /proc when the broker runs on this machine):
on a busy machine the wall-clock rate says more about the other processes than about the
relay, and the CPU costs say what the relay and the broker need per event.

Nothing consumes the RabbitMQ queue, so a row's events pile up in it. A classic queue keeps
them in the broker's memory, whose garbage collection then costs more per message the more
events a row has; ``--rabbitmq-queue lazy`` declares a lazy queue (messages go to disk), the
broker's cost of a queue that consumers keep short.

``--public-api`` keeps both publishers on their client library's public API (aio-pika's
``Exchange.publish``, nats-py's ``Client.publish``), the path that runs with any library
version other than the ones the fast paths were checked against; the ``path`` column says
which one each row took.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import nats

from facta import (
    EventStore,
    NewEvent,
    open_store,
)
from facta.relay import Relay
from facta.relay._fastpath import PUBLIC_API
from facta.relay.nats import NatsPublisher
from facta.relay.publisher import Publisher
from facta.relay.rabbitmq import RabbitMQPublisher
from facta.store.postgres import PostgresEventStore

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STREAMS = 1000
SERVERS = {"rabbitmq": "beam.smp", "nats": "nats-server"}


def server_cpu(broker: str) -> float | None:
    """CPU seconds the broker's server process has used so far (None if not found here)."""
    name = SERVERS[broker]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() != name:
                    continue
        except OSError:
            continue
        ticks = fields[1].split()
        return (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
    return None


async def fill(store: EventStore, events: int) -> None:
    """``events`` deposits over STREAMS streams, in appends of 10 events."""
    per_append = 10
    metadata = b'{"correlation_id":"5f0c6a1e-corr","causation_id":"9b1d-cause"}'
    appends = [
        store.append(
            f"account-{n % STREAMS}",
            [
                NewEvent("MoneyDeposited", b'{"amount":"12.50"}', metadata=metadata)
                for _ in range(per_append)
            ],
        )
        for n in range(events // per_append)
    ]
    for start in range(0, len(appends), 200):
        await asyncio.gather(*appends[start : start + 200])


@contextlib.asynccontextmanager
async def opened(kind: str, directory: Path) -> AsyncIterator[EventStore]:
    if kind == "sqlite":
        sqlite = await open_store(f"sqlite:///{directory / (uuid.uuid4().hex + '.db')}")
        try:
            yield sqlite
        finally:
            await sqlite.close()
        return
    schema = f"bench_relay_{uuid.uuid4().hex[:10]}"
    postgres = await PostgresEventStore.open(POSTGRES_URL, schema=schema)
    try:
        yield postgres
    finally:
        await postgres.close()
        connection = await asyncpg.connect(POSTGRES_URL)
        await connection.execute(f"DROP SCHEMA {schema} CASCADE")
        await connection.close()


@contextlib.asynccontextmanager
async def destination(kind: str, rabbitmq_queue: str = "classic") -> AsyncIterator[Publisher]:
    tag = uuid.uuid4().hex[:10]
    if kind == "rabbitmq":
        exchange = f"bench-{tag}"
        connection = await aio_pika.connect(RABBITMQ_URL)
        channel = await connection.channel()
        topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        arguments = {"x-queue-mode": "lazy"} if rabbitmq_queue == "lazy" else None
        queue = await channel.declare_queue(exchange, durable=True, arguments=arguments)
        await queue.bind(topic, "#")
        try:
            yield RabbitMQPublisher(RABBITMQ_URL, exchange=exchange)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await topic.delete()
            await connection.close()
        return
    stream = f"BENCH_{tag}"
    try:
        yield NatsPublisher(NATS_URL, stream=stream, subject=f"bench{tag}")
    finally:
        nc = await nats.connect(NATS_URL)
        await nc.jetstream().delete_stream(stream)
        await nc.close()


async def relay_throughput(
    store_kind: str, broker: str, events: int, directory: Path, rabbitmq_queue: str = "classic"
) -> str:
    """One row: relay ``events`` events from a fresh ``store_kind`` store to ``broker``."""
    async with (
        opened(store_kind, directory) as store,
        destination(broker, rabbitmq_queue) as publisher,
    ):
        await fill(store, events)
        relay = Relay(store, publisher, name=f"bench-{uuid.uuid4().hex[:6]}")
        try:
            broker_before = server_cpu(broker)
            cpu_before = time.process_time()
            started = time.perf_counter()
            await relay.catch_up()
            seconds = time.perf_counter() - started
            relay_cpu = time.process_time() - cpu_before
            broker_after = server_cpu(broker)
        finally:
            await relay.close()
        assert relay.status.published == events
        path = "fast" if getattr(publisher, "fast_path", False) else "public"
    broker_us = (
        f"{(broker_after - broker_before) / events * 1e6:9.1f}"
        if broker_before is not None and broker_after is not None
        else f"{'-':>9}"
    )
    return (
        f"{store_kind:8} {broker:9} {path:6} {events:8d} {seconds:8.2f} {events / seconds:10.0f}"
        f" {relay_cpu / events * 1e6:9.1f} {broker_us}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--brokers", default="rabbitmq,nats")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--rabbitmq-queue", choices=("classic", "lazy"), default="classic")
    parser.add_argument(
        "--public-api", action="store_true", help="keep the publishers on the public API"
    )
    args = parser.parse_args()
    if args.public_api:
        os.environ[PUBLIC_API] = "1"
    print(
        f"{'store':8} {'broker':9} {'path':6} {'events':>8} {'seconds':>8} {'events/s':>10}"
        f" {'relay us':>9} {'broker us':>9}"
    )
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(args.repeat):
            for store_kind in args.stores.split(","):
                for broker in args.brokers.split(","):
                    row = await relay_throughput(
                        store_kind, broker, args.events, Path(directory), args.rabbitmq_queue
                    )
                    print(row, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
