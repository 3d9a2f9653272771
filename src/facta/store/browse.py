"""What an operator's console asks of an engine beyond the event store: streams found by
the prefix of their ids, the log's totals, the events of one correlation, every relay's row.

An optional capability (:data:`facta.store.engine.Browsing`): the event store protocol stays
small, and an engine without it still serves everything else. Each query is meant to use an
index the engine already keeps for its appends (streams by id and version), so that a console
on a large log answers at once; :meth:`Browser.correlated` is the exception, said so below.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

from facta.store.base import RecordedEvent
from facta.store.checkpoints import RelayCheckpoint

MAX_STREAMS_PAGE = 500
"""The most streams one page of :meth:`Browser.streams` lists."""


class StreamSummary(msgspec.Struct, frozen=True):
    """One stream: its id and its version (its number of events)."""

    stream_id: str
    version: int


class Totals(msgspec.Struct, frozen=True):
    """How many events and streams the log holds."""

    events: int
    streams: int


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """The half-open range ``[low, high)`` of the stream ids that start with ``prefix``, in
    code-point order (binary on SQLite, the ``C`` collation on PostgreSQL); ``high`` is None
    for the empty prefix (no upper bound). Stream ids are ASCII (validate_stream_id), so the
    next string after every id with the prefix is the prefix with its last character raised."""
    if not prefix:
        return "", None
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


@runtime_checkable
class Browser(Protocol):
    """Reads for an operator's console."""

    async def streams(self, prefix: str, after: str | None, limit: int) -> list[StreamSummary]:
        """Up to ``limit`` streams whose ids start with ``prefix`` (a category is the prefix
        ``category-``) and sort after ``after``, in id order; keyset-paginated on the index
        of streams by id and version."""
        ...

    async def totals(self) -> Totals:
        """How many events and streams there are (counted: costs a pass over an index)."""
        ...

    async def correlated(self, key: str, limit: int) -> list[RecordedEvent]:
        """Up to ``limit`` events, in log order, whose metadata has ``key`` as correlation
        id or command id, or whose event id is ``key``. No index serves this (metadata is
        free-form JSON): a scan of the log, for a console's occasional question."""
        ...

    async def relays(self) -> list[RelayCheckpoint]:
        """Every relay's checkpoint row, by name."""
        ...
