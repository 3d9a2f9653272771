"""One worker process of benchmarks/partitions.py: a ProjectionRunner running one workload's
projection until it is sent SIGTERM (then it releases its leases and leaves the fleet).

    python benchmarks/partition_worker.py URL WORKLOAD OWNER LEASE_TTL BATCH_SIZE

The workloads' events and projections are defined here, so that the orchestrating process
(which fills the log and checks the documents) and every worker read the same classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import sys
from typing import Any

import msgspec

from facta import Event, EventEnvelope, open_store
from facta.projections import Projection, ProjectionRunner, Session

IO_WAIT = 0.001
"""Seconds the I/O-bound handler awaits per event (a call to another service)."""

CPU_ROUNDS = 1_000
"""PBKDF2-SHA256 rounds the CPU-bound handler computes per event (about 0.3 ms here; the
orchestrator measures and reports the time one takes)."""


class Touched(Event, frozen=True):
    """Something happened to a stream: the one event type of these workloads."""

    n: int


class StreamSeen(msgspec.Struct, frozen=True):
    """What a projection has seen of one stream: how many events, the last version, and (for
    the CPU-bound one) a digest of the last event."""

    stream: str
    events: int
    last_version: int
    digest: str = ""


def work(seed: str) -> str:
    """The CPU-bound handler's work for one event: no awaits, no I/O."""
    return hashlib.pbkdf2_hmac("sha256", seed.encode(), b"facta-bench", CPU_ROUNDS).hex()


class _PerStream(Projection[StreamSeen]):
    event_types = (Touched,)
    document = StreamSeen
    indexes = ("events",)

    def key_of(self, envelope: EventEnvelope[Any]) -> str:
        return envelope.recorded.stream_id

    async def _write(
        self, session: Session[StreamSeen], key: str, version: int, digest: str
    ) -> None:
        seen = await session.get(key)
        events = 1 if seen is None else seen.events + 1
        session.put(key, StreamSeen(key, events, version, digest))


class IoBound(_PerStream):
    """Awaits IO_WAIT per event (a call to another service), then writes the stream's
    document; in 8 partitions."""

    name = "bench_io"
    partitions = 8

    async def handle(self, envelope: EventEnvelope[Any], session: Session[StreamSeen]) -> None:
        await asyncio.sleep(IO_WAIT)
        recorded = envelope.recorded
        await self._write(session, recorded.stream_id, recorded.version, "")


class IoBoundUnpartitioned(IoBound):
    """The same handler in one partition (what a projection was before partitions)."""

    name = "bench_io_one"
    partitions = 1


class CpuBound(_PerStream):
    """Computes ``work`` per event (no awaits), then writes the stream's document; in 8
    partitions."""

    name = "bench_cpu"
    partitions = 8

    async def handle(self, envelope: EventEnvelope[Any], session: Session[StreamSeen]) -> None:
        recorded = envelope.recorded
        digest = work(recorded.event_id)
        await self._write(session, recorded.stream_id, recorded.version, digest)


WORKLOADS: dict[str, type[_PerStream]] = {
    "io": IoBound,
    "io-unpartitioned": IoBoundUnpartitioned,
    "cpu": CpuBound,
}


async def serve(url: str, workload: str, owner: str, lease_ttl: float, batch_size: int) -> None:
    """Run the workload's projection until SIGTERM."""
    store = await open_store(url)
    try:
        runner = ProjectionRunner(
            store,
            [WORKLOADS[workload]()],
            lease_ttl=lease_ttl,
            owner=owner,
            batch_size=batch_size,
        )
        running = asyncio.ensure_future(runner.run())
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, running.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await running
    finally:
        await store.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format=f"{sys.argv[3]} %(levelname)s %(message)s")
    url, workload, owner, lease_ttl, batch_size = sys.argv[1:6]
    asyncio.run(serve(url, workload, owner, float(lease_ttl), int(batch_size)))


if __name__ == "__main__":
    main()
