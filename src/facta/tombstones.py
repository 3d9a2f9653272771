"""What a deleted or truncated stream looks like to a reader, for every engine.

Deleting a stream appends a tombstone, :class:`StreamDeleted`, as its last event: the
stream keeps its version, so its id is never handed out again (a command on it is refused
with StreamGone, HTTP 410), and every reader of the log (projections, the relay, other
services) learns of the deletion as of any other event. A hard delete then erases the events
before the tombstone (:mod:`facta.lifecycle`); truncation erases the events before a version
and keeps a snapshot there. These pieces sit below the Application, which must recognise
both when it loads a stream; the operations themselves are in :mod:`facta.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Sequence

from facta.domain import Event, type_name
from facta.errors import StreamGone
from facta.store.base import RecordedEvent


class StreamDeleted(Event, frozen=True, tag="facta.StreamDeleted"):
    """The stream was deleted: soft (``erased`` 0, its events kept and still readable in the
    log and by version), or hard (its ``erased`` events before this one removed for good,
    for legal erasure). ``reason`` says why, for the audit trail."""

    hard: bool
    erased: int = 0
    reason: str = ""


TOMBSTONE = type_name(StreamDeleted)
"""The stored type of a tombstone: ``facta.StreamDeleted``."""


def check_loaded(stream_id: str, records: Sequence[RecordedEvent], from_version: int) -> None:
    """StreamGone if the ``records`` read of ``stream_id`` from ``from_version`` (in version
    order) end with a tombstone, or start after ``from_version`` (the versions between were
    erased: truncated, archived out of reach, or hard deleted)."""
    if not records:
        return
    if records[-1].type == TOMBSTONE:
        raise StreamGone(stream_id, "the stream was deleted")
    first = records[0].version
    if first != from_version:
        raise StreamGone(stream_id, f"versions {from_version} to {first - 1} were erased")


def gone(records: Sequence[RecordedEvent], from_version: int) -> bool:
    """Whether :func:`check_loaded` would raise: the one test on the load path, cheap."""
    return bool(records) and (records[0].version != from_version or records[-1].type == TOMBSTONE)


__all__ = ["TOMBSTONE", "StreamDeleted", "check_loaded", "gone"]
