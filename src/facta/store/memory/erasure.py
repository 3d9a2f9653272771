"""Erasure on the in-memory engine: events and snapshots removed from its lists and dicts
(:meth:`~facta.store.memory.events.MemoryEventStore.erase`), the log's size estimated from
what its events hold; compacting has nothing to give back."""

from __future__ import annotations

from collections.abc import Sequence

from facta.store.erasure import LogSize
from facta.store.memory.events import MemoryEventStore


class MemoryEraser:
    """The :class:`~facta.store.erasure.Eraser` of a MemoryEventStore."""

    def __init__(self, events: MemoryEventStore) -> None:
        self._events = events

    async def erase_events(self, stream_id: str, before_version: int) -> int:
        return self._events.erase(stream_id, before_version)

    async def erase_many(self, spans: Sequence[tuple[str, int]]) -> int:
        # Checked first, then erased with no await between: all or nothing, as one transaction.
        for stream_id, before_version in spans:
            self._events.check_erasable(stream_id, before_version)
        return sum(self._events.erase(stream_id, before) for stream_id, before in spans)

    async def delete_snapshots(self, stream_id: str, before_version: int | None = None) -> int:
        return self._events.trim_snapshots(stream_id, before_version)

    async def log_size(self) -> LogSize:
        # An estimate: the bytes of the events' data and metadata, which is what grows; the
        # dicts that index them are not counted.
        events, stored = self._events.stored()
        return LogSize(events=events, table_bytes=stored, index_bytes=0, total_bytes=stored)

    async def compact(self) -> None:
        """Nothing to do: erased events are garbage for Python to collect."""
