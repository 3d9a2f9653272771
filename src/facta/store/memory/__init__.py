"""The in-memory engine (``memory://``): for tests, examples and benchmarks of everything
above the store; gone when the process ends."""

from __future__ import annotations

from typing import Any

from facta.store.engine import (
    Boundaries,
    Browsing,
    Engine,
    Erasure,
    InlineTransactions,
    PersonalData,
    Snapshots,
)
from facta.store.memory.boundaries import MemoryBoundaries
from facta.store.memory.browse import MemoryBrowser
from facta.store.memory.checkpoints import MemoryCheckpoints
from facta.store.memory.erasure import MemoryEraser
from facta.store.memory.events import MemoryEventStore, MemoryTransaction
from facta.store.memory.keys import MemoryKeys
from facta.store.memory.read_models import MemoryReadModels


class MemoryEngine(Engine):
    """Every storage contract in process memory: the event store, snapshots, inline
    transactions, consistency boundaries, data subjects' keys, erasure, read models and relay
    checkpoints."""

    name = "memory"
    waits_on_io = False

    def __init__(self, url: str = "memory://", *, events: MemoryEventStore | None = None) -> None:
        events = events or MemoryEventStore()
        checkpoints = MemoryCheckpoints(events)
        super().__init__(
            url,
            events=events,
            read_models=MemoryReadModels(events),
            relay_checkpoints=checkpoints,
            capabilities={
                Snapshots: events,
                InlineTransactions: events,
                Boundaries: MemoryBoundaries(events),
                Browsing: MemoryBrowser(events, checkpoints),
                PersonalData: MemoryKeys(events),
                Erasure: MemoryEraser(events),
            },
        )


async def open_engine(url: str, *, create: bool = True, **options: Any) -> MemoryEngine:
    """A new, empty in-memory engine (``create`` changes nothing: there is nothing to
    create). Raises ValueError for any option: it takes none."""
    if options:
        raise ValueError(f"the memory engine takes no options, not {sorted(options)}")
    return MemoryEngine(url)


__all__ = ["MemoryEngine", "MemoryEventStore", "MemoryTransaction", "open_engine"]
