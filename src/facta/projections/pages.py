"""Pages of the log shared by a runner's partitions: each partition reads the whole log and
keeps its own events, so without sharing N partitions in one runner read every page N times.
They start from the same checkpoints and read full pages of the same size, so their pages
mostly begin at the same positions: one read serves them all.

Only full pages are kept. A full page after a position is final (gap-safe order: an event
that becomes visible later sorts after everything visible now, so after the page's end); a
short one is the live tail, which grows.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from facta.projections._target import Target
from facta.store.base import EventStore, Position, RecordedEvent


class SharedPages:
    """The last ``keep`` full pages of ``events``' log read by this runner, by the position
    they start after; a read of a page another partition is reading waits for that read."""

    def __init__(self, events: EventStore, size: int, keep: int) -> None:
        self.events = events
        self.size = size
        self.keep = keep
        self._pages: OrderedDict[Position, asyncio.Future[list[RecordedEvent]]] = OrderedDict()

    async def read(self, after: Position) -> list[RecordedEvent]:
        """The page of the log after ``after`` (``size`` events at most)."""
        found = self._pages.get(after)
        if found is not None:
            self._pages.move_to_end(after)
            return await asyncio.shield(found)
        reading = asyncio.ensure_future(self._read(after))
        self._pages[after] = reading
        while len(self._pages) > self.keep:
            self._pages.popitem(last=False)
        try:
            page = await asyncio.shield(reading)
        except BaseException:
            if self._pages.get(after) is reading:
                del self._pages[after]
            raise
        if len(page) < self.size and self._pages.get(after) is reading:
            del self._pages[after]  # the live tail: read it again next time
        return page

    async def records(
        self, after: Position, wanted: frozenset[str], target: Target, partition: int
    ) -> tuple[bool, Position, list[RecordedEvent]]:
        """For ``partition`` of ``target``: (more may follow, the position the page after
        ``after`` reaches, its events of ``wanted`` types in that partition).

        The log is read whole and filtered here, so the checkpoint moves past events of
        other types too (no rescans, no separate look at the head), and a page of log
        positions costs the same whatever the types, where a database filter on several
        types may sort everything after the checkpoint for each page (PostgreSQL without
        fresh statistics does).
        """
        page = await self.read(after)
        end = page[-1].position if page else after
        full = len(page) == self.size
        if target.partitions == 1:
            return full, end, [r for r in page if r.type in wanted]
        mine = target.in_partition
        return full, end, [r for r in page if r.type in wanted and mine(r, partition)]

    async def _read(self, after: Position) -> list[RecordedEvent]:
        # Without waiting for held-back events: the runner reads again when woken, and under
        # steady appends a wait would poll the server for as long as one is in flight.
        return await self.events.read_all(after=after, limit=self.size, wait_for_held_back=False)
