"""A process's place in the fleet of processes that share partitioned work: the partitions of
a projection (:mod:`facta.projections.runner`) or of a relay (:mod:`facta.relay.fleet`).

Each runner says, by heartbeat in the catalog (``ReadModels.runners``), that it works on a
projection (or a relay: named ``relay:NAME``); the partitions are then shared evenly: a
runner holds at most its fair share, ``ceil(partitions / runners)``. A runner that joins
lowers everyone's share, and those above it hand their extra partitions over (release the
lease at once, at a batch boundary); a runner that dies stops beating, everyone's share rises
once its heartbeat has run out, and its partitions are taken over from their checkpoints once
their leases have run out too. A runner that shuts down cleanly releases its leases and
leaves at once. There is no coordinator but the database, and the leases alone keep the work
correct: the shares only spread it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Protocol

log = logging.getLogger("facta.projections")


class Heartbeats(Protocol):
    """Where runners say they are there (an engine's ``ReadModels`` is one)."""

    async def runners(self, name: str, owner: str, ttl: float) -> int:
        """Count ``owner`` in for ``ttl`` seconds more; how many runners ``name`` has."""
        ...

    async def leave(self, name: str, owner: str) -> None:
        """Count ``owner`` out at once."""
        ...


class Fleet:
    """Which partitions this runner holds, and how many it may hold, per projection."""

    def __init__(
        self, backend: Heartbeats, owner: str, ttl: float, *, what: str = "projection"
    ) -> None:
        self.backend = backend
        self.what = what  # what its logs call the work: "projection", "relay"
        self.owner = owner
        self.ttl = ttl
        self.held: dict[str, set[int]] = {}
        self.share: dict[str, int] = {}
        self.runners: dict[str, int] = {}
        self._counted: dict[str, asyncio.Event] = {}

    async def beat(self, name: str, partitions: int) -> None:
        """Keep this runner counted among ``name``'s runners, and its share up to date,
        until cancelled; then leave."""
        counted = self._counted.setdefault(name, asyncio.Event())
        try:
            while True:
                try:
                    runners = await self.backend.runners(name, self.owner, self.ttl)
                except Exception as exc:  # the store is out of reach: keep the last share
                    log.warning("%s %s: heartbeat failed: %s", self.what, name, exc)
                else:
                    if runners != self.runners.get(name):
                        log.info("%s %s: %d runner(s) share it", self.what, name, runners)
                    self.runners[name] = runners
                    self.share[name] = math.ceil(partitions / runners)
                    counted.set()
                await asyncio.sleep(self.ttl / 3)
        finally:
            try:
                await asyncio.shield(self.backend.leave(name, self.owner))
            except Exception as exc:  # others see it gone once its heartbeat runs out
                log.warning("%s %s: could not leave: %s", self.what, name, exc)

    async def counted(self, name: str) -> None:
        """Return once this runner's first heartbeat for ``name`` is in."""
        await self._counted.setdefault(name, asyncio.Event()).wait()

    def may_take(self, name: str) -> bool:
        """Whether this runner is below its share of ``name``'s partitions."""
        return len(self.held.get(name, ())) < self.share.get(name, 0)

    def took(self, name: str, partition: int) -> None:
        self.held.setdefault(name, set()).add(partition)

    def gave_up(self, name: str, partition: int) -> None:
        self.held.get(name, set()).discard(partition)

    def must_hand_over(self, name: str, partition: int) -> bool:
        """Whether this runner holds more than its share of ``name`` and ``partition`` is
        one of those to give up (the highest-numbered it holds)."""
        held = self.held.get(name, set())
        extra = len(held) - self.share.get(name, len(held))
        return extra > 0 and partition in sorted(held)[-extra:]

    def waiting_reason(self, name: str) -> str:
        return (
            f"{self.runners.get(name, 1)} runners share it: this one holds its share"
            f" ({self.share.get(name, 0)})"
        )
