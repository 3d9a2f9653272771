"""A relay's partitions shared by a fleet of processes, as partitioned projections are.

Each process runs a :class:`RelayFleet` of the same name and number of partitions (``facta
relay run --partitions N``): it has a :class:`~facta.relay.relay.Relay` for every partition,
each on a connection of its own, and says by heartbeat (the engine's runner heartbeats, named
``relay:NAME``) that it is there. A process holds at most its fair share, ``ceil(N /
processes)``, of the partitions' leases: one that joins lowers the others' share and they hand
their extra partitions over (every batch sent confirmed and recorded, then the lease
released); one that dies stops beating, and the others take its partitions over from their
checkpoints once their leases have run out. Each partition is still published by one relay at
a time, in log order, so each stream's events reach the broker in order. There is no
coordinator but the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from facta._fleet import Fleet
from facta._ids import owner_id
from facta.relay.publisher import Publisher
from facta.relay.relay import Relay, RelayStatus
from facta.store.engine import Engine


class RelayFleet:
    """This process's part of a relay of ``partitions`` partitions shared by every process
    that runs one of the same name. ``publishers`` makes one publisher per partition (each
    partition publishes on a connection of its own); the other options are
    :class:`~facta.relay.relay.Relay`'s."""

    def __init__(
        self,
        store: Engine,
        publishers: Callable[[], Publisher],
        *,
        partitions: int,
        lease_ttl: float = 10.0,
        owner: str | None = None,
        **options: Any,
    ) -> None:
        if partitions < 2:
            raise ValueError(f"a fleet shares 2 or more partitions, not {partitions}")
        self.owner = owner or owner_id()
        self.fleet = Fleet(store.read_models, self.owner, lease_ttl, what="relay")
        self.relays = [
            Relay(
                store,
                publishers(),
                partitions=partitions,
                partition=p,
                lease_ttl=lease_ttl,
                owner=self.owner,
                fleet=self.fleet,
                **options,
            )
            for p in range(partitions)
        ]
        self.name = self.relays[0].fleet_name

    @property
    def statuses(self) -> list[RelayStatus]:
        """Each partition's relay status, in partition order."""
        return [relay.status for relay in self.relays]

    async def run(self) -> None:
        """Publish this process's share of the partitions until cancelled; then hand them
        over (their leases released) and leave the fleet at once."""
        beat = asyncio.create_task(self.fleet.beat(self.name, len(self.relays)))
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.fleet.counted(self.name)
            tasks = [asyncio.create_task(relay.run()) for relay in self.relays]
            # A relay stops only for what a retry cannot fix (the broker refusing it): then
            # the others stop too, and it is raised.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in [*tasks, beat]:
                task.cancel()
            await asyncio.gather(*tasks, beat, return_exceptions=True)

    async def close(self) -> None:
        for relay in self.relays:
            await relay.close()
