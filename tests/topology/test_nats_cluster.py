"""A NATS JetStream node killed while the relay publishes (issue 23, campaign 4, short).

Three nats-server processes in a cluster; the relay's stream is kept on all three
(``replicas=3``). The relay publishes 3,000 events from a SQLite store; once a sixth of them
is out, the server that leads the stream is SIGKILLed. The relay (connected to the cluster's
three addresses) reconnects, resends what was unconfirmed from its checkpoint, and goes on.
The stream then holds every event exactly once (JetStream's de-duplication window, by event
id, takes the resends), and a consumer on the surviving servers gets each stream's events in
order, once.

Serial: it runs a cluster of its own beside the machine's nats-server, and loads the
machine for its span."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import nats
import pytest

from facta.relay import Relay
from facta.relay.nats import NatsConsumer
from facta.relay.nats_servers import servers
from facta.relay.publisher import open_publisher
from tests.relay.conftest import Received, fill, until
from tests.topology.nats_cluster import NatsCluster

pytestmark = [pytest.mark.serial, pytest.mark.timeout(240)]

# 3,000 events in `make test`; `make soak` sets more streams (FACTA_TOPOLOGY_STREAMS).
STREAMS, PER_STREAM = int(os.environ.get("FACTA_TOPOLOGY_STREAMS", "100")), 30
TOTAL = STREAMS * PER_STREAM
STREAM = "FACTA_CLUSTER"


async def test_a_node_killed_while_the_relay_publishes_loses_nothing(tmp_path: Path) -> None:
    cluster = NatsCluster()
    store = None
    try:
        await cluster.start()
        store = await fill(tmp_path / "events.db", STREAMS, PER_STREAM)
        publisher = open_publisher(f"{cluster.url}?stream={STREAM}&replicas=3&timeout=5")
        relay = Relay(store, publisher, name="cluster", batch_size=100, max_in_flight=300)
        task = asyncio.create_task(relay.run())
        try:
            await until(lambda: relay.status.published >= TOTAL // 6, within=60)
            leader = await _stream_leader(cluster.url)
            killed = time.monotonic()
            cluster.kill(int(leader.removeprefix("node")))
            await until(lambda: relay.status.published >= TOTAL, within=120)
            took = time.monotonic() - killed
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await relay.close()
        print(f"nats cluster: leader {leader} killed, relay done {took:.2f} s later,"
              f" {relay.status.reconnects} reconnects")  # fmt: skip

        messages, distinct = await _stream_contents(cluster.url)
        assert (messages, distinct) == (TOTAL, TOTAL)  # every event, no repeat kept

        received = Received()
        consumer = NatsConsumer(cluster.url, "cluster-check", received.handle, stream=STREAM)
        reading = asyncio.create_task(consumer.run())
        try:
            # The cluster elects new leaders for what the killed server led: JetStream's API
            # times out meanwhile (5 s a call), and the consumer retries.
            await asyncio.wait_for(consumer.connected.wait(), 60)
            await received.wait_for(TOTAL)
            await asyncio.sleep(0.2)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        received.assert_complete(STREAMS, PER_STREAM)
        assert consumer.dispatcher.duplicates == 0
    finally:
        if store is not None:
            await store.close()
        cluster.stop()


async def _stream_leader(url: str) -> str:
    nc = await nats.connect(servers(url))
    try:
        info = await nc.jetstream().stream_info(STREAM)
        assert info.cluster is not None
        assert info.cluster.leader is not None
        assert len(info.cluster.replicas or []) == 2  # with the leader: three copies
        return info.cluster.leader
    finally:
        await nc.close()


async def _stream_contents(url: str) -> tuple[int, int]:
    """How many messages the stream holds, and how many distinct event ids among them."""
    nc = await nats.connect(servers(url))
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        ids = set()
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(STREAM, sequence)
            ids.add((message.headers or {}).get("Nats-Msg-Id"))
        return info.state.messages, len(ids - {None})
    finally:
        await nc.close()
