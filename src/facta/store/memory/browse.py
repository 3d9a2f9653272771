"""The console's reads on the in-memory engine (:class:`facta.store.browse.Browser`): scans
of its dicts, which is all a store held in a test's memory needs."""

from __future__ import annotations

from facta.store.base import RecordedEvent
from facta.store.browse import StreamSummary, Totals
from facta.store.checkpoints import RelayCheckpoint
from facta.store.memory.checkpoints import MemoryCheckpoints
from facta.store.memory.events import MemoryEventStore


class MemoryBrowser:
    """Reads for an operator's console on one in-memory store."""

    def __init__(self, events: MemoryEventStore, checkpoints: MemoryCheckpoints) -> None:
        self.events = events
        self.checkpoints = checkpoints

    async def streams(self, prefix: str, after: str | None, limit: int) -> list[StreamSummary]:
        found = sorted(
            s
            for s in self.events.stream_ids()
            if s.startswith(prefix) and (after is None or s > after)
        )
        return [StreamSummary(s, await self.events.stream_version(s)) for s in found[:limit]]

    async def totals(self) -> Totals:
        return Totals(self.events.event_count(), len(self.events.stream_ids()))

    async def correlated(self, key: str, limit: int) -> list[RecordedEvent]:
        found = []
        for record in await self.events.read_all(limit=2**62):
            meta = record.meta
            if key in (record.event_id, meta.get("correlation_id"), meta.get("command_id")):
                found.append(record)
                if len(found) == limit:
                    break
        return found

    async def relays(self) -> list[RelayCheckpoint]:
        return await self.checkpoints.rows()
