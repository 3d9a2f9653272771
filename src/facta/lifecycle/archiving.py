"""Archiving: moving the history of closed or old streams out of the database into cold
storage (:mod:`facta.archive.cold`), where the engine still reads it through.

A run picks streams by policy (deleted ones, those idle for longer than a given age, in
given categories) and moves each one's events but the last: the last stays in the database,
so the stream keeps its version, appends to it go on as before, and a read of it knows to
look in the archive (:mod:`facta.archive.reading`). Loads, history and reads of the log
return the archived events as before, in order, byte for byte.

It moves only events that every reader of the log has passed (every projection slot's and
relay's checkpoint, the *horizon*): one that lags behind still reads them through, but only
a reader that reads (rather than follows the engine's notifications) would find them. Not
moved: streams with tagged events (consistency-boundary queries read the database only).
Chunks are written and indexed first, and the events erased from the database after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import msgspec

from facta.archive.cold import ColdStore
from facta.store.base import START, Position, RecordedEvent, category_of
from facta.store.engine import Browsing, Engine, Erasure
from facta.store.erasure import LogSize
from facta.tombstones import TOMBSTONE

ERASE_BATCH = 1000
"""Streams erased per transaction once their events are in the archive."""

Progress = Callable[[str, int, int], None]
"""Told ``(stage, done, total)`` as a run goes: stages ``scan``, ``copy`` and ``erase``."""


class ArchiveRun(msgspec.Struct, frozen=True):
    """What a run moved: streams and events, the chunks written, the horizon it stopped at,
    and the database's log before and after (before compacting, unless asked to)."""

    streams: int
    events: int
    chunks: int
    horizon: Position
    before: LogSize
    after: LogSize


class _Stream:
    """What the scan learnt of one stream."""

    __slots__ = ("first", "last", "last_at", "last_type", "next", "tagged")

    def __init__(self, record: RecordedEvent) -> None:
        self.first = self.last = record.version
        self.last_at = record.recorded_at
        self.last_type = record.type
        self.tagged = bool(record.tags)
        self.next = record.version  # the next version the copy may take: a prefix only


def _archive_of(store: Engine) -> ColdStore:
    if store.archive is None:
        raise ValueError("the store was opened without an archive: add archive=DIR to its URL")
    return store.archive


async def readers_horizon(store: Engine) -> Position:
    """The position every reader of the log has passed: the lowest checkpoint of every
    projection slot (inline and retired ones aside) and relay; the head when there is none."""
    positions = [
        row.position
        for row in await store.read_models.slots()
        if row.state not in ("inline", "retired")
    ]
    browser = store.capability(Browsing)
    if browser is not None:
        positions += [row.position for row in await browser.relays()]
    return min(positions) if positions else await store.head()


async def archive_streams(
    store: Engine,
    *,
    older_than: float | None = None,
    deleted: bool = True,
    categories: Sequence[str] | None = None,
    horizon: Position | None = None,
    chunk_size: int = 10_000,
    compact: bool = False,
    progress: Progress | None = None,
    now: float | None = None,
) -> ArchiveRun:
    """Move the events of the chosen streams, but each one's last, to the engine's archive.

    Chosen: streams whose last event is a tombstone (with ``deleted``) or older than
    ``older_than`` seconds, in ``categories`` if given, with no tagged event. Only events up
    to ``horizon`` (default :func:`readers_horizon`) move. With ``compact``, the database
    gives the freed space back afterwards. ValueError if the engine was opened without an
    archive (``archive=DIRECTORY`` in its URL); CapabilityMissing without Erasure.
    """
    eraser = store.require(Erasure)
    archive = _archive_of(store)
    report = progress or (lambda stage, done, total: None)
    horizon = horizon if horizon is not None else await readers_horizon(store)
    cutoff = None if older_than is None else (now or time.time()) - older_than
    before = await eraser.log_size()
    streams = await _scan(store, before.events, report)
    wanted = set(categories or ())
    chosen = {
        stream_id
        for stream_id, seen in streams.items()
        if not seen.tagged
        and seen.first < seen.last
        and (not wanted or category_of(stream_id) in wanted)
        and (
            (deleted and seen.last_type == TOMBSTONE)
            or (cutoff is not None and seen.last_at < cutoff)
        )
    }
    moved, chunks = await _copy(store, archive, streams, chosen, horizon, chunk_size, report)
    erasing = [(s, streams[s].next) for s in sorted(chosen) if streams[s].next > streams[s].first]
    for done in range(0, len(erasing), ERASE_BATCH):
        await eraser.erase_many(erasing[done : done + ERASE_BATCH])
        report("erase", min(done + ERASE_BATCH, len(erasing)), len(erasing))
    if compact:
        await eraser.compact()
    after = await eraser.log_size()
    return ArchiveRun(len(erasing), moved, chunks, horizon, before, after)


async def _scan(store: Engine, total: int, report: Progress) -> dict[str, _Stream]:
    """Every stream's first and last version, its last event's time and type, and whether
    it holds tagged events: one read of the database's log."""
    streams: dict[str, _Stream] = {}
    after, done = START, 0
    while page := await store.stored_events.read_all(after=after, limit=10_000):
        for record in page:
            seen = streams.get(record.stream_id)
            if seen is None:
                streams[record.stream_id] = _Stream(record)
                continue
            seen.last, seen.last_at, seen.last_type = (
                record.version,
                record.recorded_at,
                record.type,
            )
            seen.tagged = seen.tagged or bool(record.tags)
        after, done = page[-1].position, done + len(page)
        report("scan", done, total)
    return streams


async def _copy(
    store: Engine,
    archive: ColdStore,
    streams: dict[str, _Stream],
    chosen: set[str],
    horizon: Position,
    chunk_size: int,
    report: Progress,
) -> tuple[int, int]:
    """Write the chosen streams' events (each stream's unbroken run from its first stored
    version, up to the horizon, but its last event) to chunks; returns (events, chunks)."""
    pending: list[RecordedEvent] = []
    moved = chunks = 0
    after = START
    while page := await store.stored_events.read_all(after=after, limit=chunk_size):
        for record in page:
            if record.position > horizon:
                break
            seen = streams.get(record.stream_id) if record.stream_id in chosen else None
            if seen is not None and record.version == seen.next and record.version < seen.last:
                pending.append(record)
                seen.next += 1
        after = page[-1].position
        while len(pending) >= chunk_size:  # chunks of chunk_size events, the last one less
            await asyncio.to_thread(archive.write_chunk, pending[:chunk_size])
            moved, chunks, pending = moved + chunk_size, chunks + 1, pending[chunk_size:]
            report("copy", moved, 0)
        if after > horizon:
            break
    if pending:
        await asyncio.to_thread(archive.write_chunk, pending)
        moved, chunks = moved + len(pending), chunks + 1
        report("copy", moved, 0)
    return moved, chunks


async def archive_status(store: Engine) -> dict[str, int]:
    """The archive's chunks, events, streams and bytes, and the database's log (events,
    table and index bytes); ValueError without an archive."""
    archive = _archive_of(store)
    chunks, events, streams, size = await asyncio.to_thread(archive.totals)
    hot = await store.require(Erasure).log_size()
    return {
        "archived_chunks": chunks,
        "archived_events": events,
        "archived_streams": streams,
        "archived_bytes": size,
        "database_events": hot.events,
        "database_table_bytes": hot.table_bytes,
        "database_index_bytes": hot.index_bytes,
        "database_bytes": hot.total_bytes,
    }
