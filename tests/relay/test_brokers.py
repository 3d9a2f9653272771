"""The relay and the consumers against the machine's real RabbitMQ and NATS JetStream.

Each broker: 10,000 events relayed and consumed in order (by one relay, and by four relays
of one partition of the log each); the relay process SIGKILLed mid-run and restarted; the
relay's connection dropped from the broker's side mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from facta import NewEvent
from facta.relay import Relay, to_message
from facta.results import EventEnvelope
from tests.relay.conftest import (
    Harness,
    NatsHarness,
    Received,
    fill,
    running,
    until,
)

STREAMS, PER_STREAM = 200, 50  # 10,000 events, streams interleaved in the log
TOTAL = STREAMS * PER_STREAM

pytestmark = pytest.mark.timeout(120)


async def test_10000_events_relayed_and_consumed_in_order(broker: Harness, tmp_path: Path) -> None:
    store = await fill(tmp_path / "events.db", STREAMS, PER_STREAM)
    received = Received()
    relay = Relay(store, broker.publisher(), name=broker.relay_name, batch_size=500)
    try:
        async with running(broker.consumer(received.handle)) as consumer:
            task = asyncio.create_task(relay.run())
            try:
                await received.wait_for(TOTAL)
                await asyncio.sleep(0.2)  # anything extra would arrive now
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        received.assert_complete(STREAMS, PER_STREAM)
        assert consumer.dispatcher.duplicates == 0
        assert relay.status.published == TOTAL
        assert relay.publisher.fast_path is broker.fast_path_expected()  # type: ignore[attr-defined]
        row = await relay.checkpoints.get(relay.name)
        assert row is not None
        assert row.position == await store.head()
        assert row.published == TOTAL
        assert row.owner is None  # released on the way out
    finally:
        await relay.close()
        await store.close()


async def test_partitioned_relays_publish_every_event_once_each_stream_in_order(
    plain_broker: Harness, tmp_path: Path
) -> None:
    """Four relays, one per partition of the log, each on its own connection: together they
    publish everything once, and each stream's events arrive in order."""
    store = await fill(tmp_path / "events.db", STREAMS, PER_STREAM)
    received = Received()
    relays = [
        Relay(
            store,
            plain_broker.publisher(),
            name=plain_broker.relay_name,
            batch_size=200,
            partitions=4,
            partition=p,
        )
        for p in range(4)
    ]
    try:
        async with running(plain_broker.consumer(received.handle)) as consumer:
            tasks = [asyncio.create_task(r.run()) for r in relays]
            try:
                await received.wait_for(TOTAL)
                await asyncio.sleep(0.2)  # anything extra would arrive now
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        received.assert_complete(STREAMS, PER_STREAM)
        assert consumer.dispatcher.duplicates == 0
        published = [r.status.published for r in relays]
        assert sum(published) == TOTAL
        assert all(n > 0 for n in published)  # every partition had streams to publish
        head = await store.head()
        for r in relays:
            row = await r.checkpoints.get(r.name)
            assert row is not None
            assert (row.position, row.published) == (head, r.status.published)
        assert {r.name for r in relays} == {f"{plain_broker.relay_name}#{p}/4" for p in range(4)}
    finally:
        for r in relays:
            await r.close()
        await store.close()


async def test_relay_killed_mid_run_and_restarted_loses_nothing(
    broker: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "events.db"
    store = await fill(path, STREAMS, PER_STREAM)
    head = await store.head()
    received = Received()
    command = [
        sys.executable,
        "-m",
        "facta.cli",
        "relay",
        "run",
        "--store",
        f"sqlite:///{path}",
        "--to",
        broker.relay_url(),
        "--name",
        broker.relay_name,
        "--lease-ttl",
        "1",
        "--batch-size",
        "200",
        "--max-in-flight",
        "1000",
        "--quiet",
    ]
    checkpoints = store.relay_checkpoints
    try:
        async with running(broker.consumer(received.handle)) as consumer:
            first = await asyncio.create_subprocess_exec(
                *command, stdout=subprocess.DEVNULL, env=broker.environment()
            )
            try:
                while (row := await checkpoints.get(broker.relay_name)) is None or (
                    row.published < TOTAL // 10
                ):
                    assert first.returncode is None, "the relay exited"
                    await asyncio.sleep(0.005)
            finally:
                first.send_signal(signal.SIGKILL)
                await first.wait()
            row = await checkpoints.get(broker.relay_name)
            assert row is not None
            assert row.position < head, "the relay was not killed mid-run"
            assert row.owner is not None  # the dead relay's lease is still there
            second = await asyncio.create_subprocess_exec(
                *command, stdout=subprocess.DEVNULL, env=broker.environment()
            )
            try:
                await received.wait_for(TOTAL)
                await asyncio.sleep(0.3)
            finally:
                second.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(second.wait(), 15)
                except TimeoutError:  # pragma: no cover
                    second.kill()
                    raise
        received.assert_complete(STREAMS, PER_STREAM)
        row = await checkpoints.get(broker.relay_name)
        assert row is not None
        assert row.position == head
        if isinstance(broker, NatsHarness):
            # JetStream de-duplicated the resend by Nats-Msg-Id: each event is stored once.
            assert await broker.stream_messages() == TOTAL
            assert consumer.dispatcher.duplicates == 0
        # RabbitMQ may deliver what was confirmed after the last checkpoint twice; the
        # consumer dropped every repeat (assert_complete saw each version once).
    finally:
        await store.close()


async def test_connection_dropped_by_the_broker_relay_reconnects(
    broker: Harness, tmp_path: Path
) -> None:
    """Events keep coming while the broker drops the relay's connection: the relay connects
    again by itself, resends what was unconfirmed, and goes on."""
    store = await fill(tmp_path / "events.db", STREAMS, PER_STREAM // 5)
    received = Received()
    relay = Relay(
        store, broker.publisher(), name=broker.relay_name, batch_size=100, max_in_flight=500
    )

    dropped = asyncio.Event()

    async def keep_writing() -> None:
        # Half before the drop, half only after it: those can only go out on a new connection.
        chunk = 5
        for round_ in range((PER_STREAM - PER_STREAM // 5) // chunk):
            if round_ == 4:
                await dropped.wait()
            await asyncio.gather(
                *(
                    store.append(
                        f"account-{s}", [NewEvent("MoneyDeposited", b"{}") for _ in range(chunk)]
                    )
                    for s in range(STREAMS)
                )
            )
            await asyncio.sleep(0.05)

    try:
        async with running(broker.consumer(received.handle)):
            task = asyncio.create_task(relay.run())
            writer = asyncio.create_task(keep_writing())
            try:
                await until(lambda: relay.status.published >= TOTAL // 10)
                await broker.drop_relay_connection()
                dropped.set()
                await writer
                await received.wait_for(TOTAL)
                await asyncio.sleep(0.2)
            finally:
                writer.cancel()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        assert relay.status.reconnects >= 1
        received.assert_complete(STREAMS, PER_STREAM)
    finally:
        await relay.close()
        await store.close()


async def test_consumer_drops_repeats_and_dead_letters_poison(
    broker: Harness, tmp_path: Path
) -> None:
    store = await fill(tmp_path / "events.db", 3, 4)
    events = await store.read_all()
    poison = events[5]
    calls: dict[str, int] = {}
    handled: list[str] = []

    async def handler(envelope: EventEnvelope[Any]) -> None:
        event_id = envelope.recorded.event_id
        calls[event_id] = calls.get(event_id, 0) + 1
        if event_id == poison.event_id:
            raise RuntimeError("cannot handle this one")
        handled.append(event_id)

    publisher = broker.publisher()
    try:
        async with running(broker.consumer(handler, max_tries=3, retry_delay=0.01)) as consumer:
            await publisher.connect()
            messages = [m for e in events if (m := to_message(e)) is not None]
            await (await publisher.publish(messages))
            await (await publisher.publish(messages[:6]))  # a resend: repeats
            await until(lambda: len(handled) == len(events) - 1 and consumer.dispatcher.dead == 1)
            await asyncio.sleep(0.2)
        assert handled == [e.event_id for e in events if e is not poison]
        assert calls[poison.event_id] == 3
        dead = await broker.dead_letters()
        assert len(dead) == 1
        body, headers = dead[0]
        assert body == poison.data
        assert "cannot handle this one" in str(
            headers.get("x-facta-error", headers.get("Facta-Error"))
        )
        if isinstance(broker, NatsHarness):
            assert consumer.dispatcher.duplicates == 0  # the server dropped the resend
        else:
            assert consumer.dispatcher.duplicates == 6  # the poison one was parked: a repeat too
    finally:
        await publisher.close()
        await store.close()


@pytest.fixture(autouse=True)
def _no_stray_environment() -> None:
    # The subprocess relay must not inherit a broker URL from the developer's shell.
    os.environ.pop("FACTA_BROKER", None)
