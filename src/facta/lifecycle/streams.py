"""Deleting and truncating streams.

- **Soft delete** appends a tombstone (:class:`~facta.tombstones.StreamDeleted`) as the
  stream's last event. Its events stay, readable by version and in the log; loading its
  current state raises StreamGone (HTTP 410), so no command runs on it again. The id is not
  reused: the stream keeps its version, and a create command on it is refused too. A soft
  delete is not undone by facta (append to the stream with the store directly if you must).
- **Hard delete** (legal erasure) appends the tombstone, then erases every event before it,
  its tags and its snapshots (and its archived copy). The tombstone is the record that the
  events existed: how many, when, and why.
- **Truncate** keeps a stream's events from a version on: for an aggregate's stream it first
  saves a snapshot of the state just before that version, so the aggregate still loads; time
  travel to an erased version then raises StreamGone.

Each needs the engine's :data:`~facta.store.engine.Erasure` capability, except soft delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from typing import Any

import msgspec

from facta._commands import metadata as command_metadata
from facta.application import Application
from facta.codec import Codec
from facta.domain import Aggregate
from facta.errors import StreamGone, StreamNotFound, WrongExpectedVersion
from facta.store.base import Position, TransactionHook, validate_stream_id
from facta.store.engine import Engine, Erasure, Snapshots
from facta.tombstones import TOMBSTONE, StreamDeleted

_TOMBSTONES = Codec([StreamDeleted])


class Deletion(msgspec.Struct, frozen=True):
    """What :func:`delete_stream` did: the tombstone's version and position, and how many
    stored events a hard delete erased (0 for a soft one)."""

    stream_id: str
    hard: bool
    version: int
    position: Position
    erased: int


class Truncation(msgspec.Struct, frozen=True):
    """What :func:`truncate_stream` did: the stream now starts at ``before``; ``erased``
    events were removed; ``snapshot`` is the version of the snapshot kept (None: none)."""

    stream_id: str
    before: int
    erased: int
    snapshot: int | None


async def delete_stream(
    store: Engine,
    stream_id: str,
    *,
    hard: bool = False,
    reason: str = "",
    app: Application | None = None,
    hook: TransactionHook | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Deletion:
    """Delete ``stream_id``: append its tombstone (with ``hook``, default ``app``'s transaction
    hook, so inline projections see it), and with ``hard`` erase every event before it.

    StreamNotFound for a stream with no events. Deleting a deleted stream again appends
    nothing (a hard delete of a soft-deleted one erases what the soft one kept). CapabilityMissing
    for a hard delete on an engine without Erasure (nothing is written then).
    """
    validate_stream_id(stream_id)
    eraser = store.require(Erasure) if hard else None
    if hook is None and app is not None:
        hook = app.transaction_hook
    meta = command_metadata(metadata, None, None)
    # ``app``'s commands on the stream wait; other processes' are raced, and retried after.
    async with app.holding(stream_id) if app is not None else contextlib.nullcontext():
        for attempt in range(10):
            version = await store.stream_version(stream_id)
            if version == 0:
                raise StreamNotFound(stream_id)
            last = (await store.read_stream(stream_id, from_version=version))[-1]
            earlier = _TOMBSTONES.decode(last) if last.type == TOMBSTONE else None
            if isinstance(earlier, StreamDeleted) and (earlier.hard or not hard):
                tombstone_version, position = last.version, last.position
                break
            tombstone = StreamDeleted(hard, erased=version if hard else 0, reason=reason)
            try:
                appended = await store.append(
                    stream_id, [_TOMBSTONES.encode(tombstone, metadata=meta)], version, hook=hook
                )
            except WrongExpectedVersion:
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
                continue
            tombstone_version, position = appended.version, appended.position
            break
        else:
            raise WrongExpectedVersion(stream_id, version, await store.stream_version(stream_id))
    erased = 0
    if eraser is not None:
        erased = await eraser.erase_events(stream_id, tombstone_version)
        await eraser.delete_snapshots(stream_id)
        if store.archive is not None:
            erased += await asyncio.to_thread(store.archive.erase, stream_id)
    if app is not None:
        app.cache.discard(stream_id)
    return Deletion(stream_id, hard, tombstone_version, position, erased)


async def truncate_stream(
    store: Engine,
    stream_id: str,
    before: int,
    *,
    aggregate: Aggregate[Any, Any, Any] | None = None,
    app: Application | None = None,
) -> Truncation:
    """Erase the events of ``stream_id`` before version ``before``.

    With ``aggregate`` (whose stream it is), the state at ``before - 1`` is saved as a
    snapshot first, so the aggregate still loads (through ``app``, or an Application made
    here); the engine must have Snapshots. ValueError when ``before`` is past the stream's
    version (its last event is always kept); StreamGone for a deleted stream.
    """
    eraser = store.require(Erasure)
    version = await store.stream_version(stream_id)
    if before > version:
        raise ValueError(
            f"stream {stream_id!r} is at version {version}: cannot truncate before {before}"
        )
    snapshot = None
    if aggregate is not None and before > 1:
        snapshots = store.require(Snapshots)
        app = app or Application(store, cache_size=0)
        prefix = f"{aggregate.name}-"
        if not stream_id.startswith(prefix):
            raise ValueError(f"stream {stream_id!r} is not one of {aggregate.name!r}")
        loaded = await app.load(aggregate, stream_id[len(prefix) :], version=before - 1)
        last = await store.read_stream(stream_id, from_version=before - 1, to_version=before - 1)
        if not last:
            raise StreamGone(stream_id, f"version {before - 1} was erased already")
        await snapshots.save_snapshot(app.snapshots.snapshot(aggregate, last[0], loaded.state))
        snapshot = before - 1
    erased = await eraser.erase_events(stream_id, before)
    # Snapshots below the kept one describe erased versions: they go too.
    await eraser.delete_snapshots(stream_id, before - 1 if snapshot is not None else before)
    if app is not None:
        app.cache.discard(stream_id)
    return Truncation(stream_id, before, erased, snapshot)
