"""What the PostgreSQL store's modules share: telling a lost connection from a refused
request, and turning rows into RecordedEvents."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg

from facta.errors import StoreUnavailable
from facta.store.base import Position, RecordedEvent

COLUMNS = (
    "event_id, stream_id, version, commit_xid, sequence, type, schema_version, data, metadata,"
    " recorded_at"
)
"""The columns :func:`recorded` expects, in order."""

# Errors that mean the connection could not be made or is gone, not that a request is bad.
LOST: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,  # connecting
    asyncpg.PostgresConnectionError,  # class 08, "connection was closed in the middle ..."
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    asyncpg.InternalClientError,  # a connection killed while idle in the pool, used anyway
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


def lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection could not be made or is gone."""
    return isinstance(exc, LOST) and not isinstance(exc, asyncpg.DataError)  # bad arguments


def drop_if_lost(connection: Any, exc: BaseException) -> None:
    """Close a pooled connection that failed as lost, so the pool replaces it: the store
    skips the pool's reset (which would notice) for speed."""
    if lost(exc):
        with contextlib.suppress(asyncpg.InterfaceError):  # the pool has let go of it already
            connection.terminate()


def unavailable(exc: BaseException, where: str) -> StoreUnavailable:
    """The StoreUnavailable to raise for a lost connection to the server at ``where``."""
    return StoreUnavailable(f"PostgreSQL at {where} is unreachable: {type(exc).__name__}: {exc}")


def recorded(rows: Sequence[Any]) -> list[RecordedEvent]:
    """Rows of :data:`COLUMNS` as RecordedEvents."""
    # Unpacking the row is about twice as fast as indexing it.
    position = Position
    return [
        RecordedEvent(i, s, v, position(c, q), t, sv, d, m, at)
        for i, s, v, c, q, t, sv, d, m, at in rows
    ]
