"""The erasure contract of an engine: removing a stream's older events for good, the
snapshots below them, and measuring and compacting what the log takes on disk.

It is what :mod:`facta.lifecycle` builds on (hard deletes, truncation, max-age and
max-count, archiving to cold storage); an engine that offers it declares the
:data:`~facta.store.engine.Erasure` capability. The log stays append-only for everything
else: only these calls remove events, and they never remove a stream's last event, so a
stream's version never goes back and its id is never handed out again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec


class LogSize(msgspec.Struct, frozen=True, gc=False):
    """What the stored log takes: its events, and the bytes of the tables that hold them
    (events and their tags) apart from those of their indexes. ``total_bytes`` is the
    database's whole size where the engine knows it (a SQLite file), else the sum."""

    events: int
    table_bytes: int
    index_bytes: int
    total_bytes: int


@runtime_checkable
class Eraser(Protocol):
    """Removing stored events and snapshots of a stream, and the log's size on disk."""

    async def erase_events(self, stream_id: str, before_version: int) -> int:
        """Delete the events of ``stream_id`` whose version is below ``before_version``
        (with their tags), in one transaction; returns how many were deleted.

        ValueError if ``before_version`` is above the stream's version: the last event is
        never removed (it keeps the stream's version, so the id is never reused). Reads of
        the stream then start at ``before_version``; readers of the log no longer see the
        erased events. Appends to the stream are unaffected.
        """
        ...

    async def erase_many(self, spans: Sequence[tuple[str, int]]) -> int:
        """:meth:`erase_events` for each ``(stream_id, before_version)``, in one transaction
        (what archiving does for thousands of streams: one write, and on SQLite one
        checkpoint, instead of one each); returns how many events were deleted. ValueError,
        with nothing deleted, if one of them would erase a stream's last event."""
        ...

    async def delete_snapshots(self, stream_id: str, before_version: int | None = None) -> int:
        """Delete the snapshots of ``stream_id`` whose version is below ``before_version``
        (every one with None); returns how many were deleted."""
        ...

    async def log_size(self) -> LogSize:
        """The events stored and the bytes their tables and indexes take now."""
        ...

    async def compact(self) -> None:
        """Give the space of erased events back to the file system (SQLite's VACUUM,
        PostgreSQL's VACUUM FULL of the log's tables: it locks them while it runs)."""
        ...
