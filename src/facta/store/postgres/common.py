"""What the PostgreSQL store's modules share: telling a lost connection from a refused
request, and turning rows into RecordedEvents."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from facta.errors import StoreSetupError, StoreUnavailable
from facta.store.base import Position, RecordedEvent

COLUMNS = (
    "event_id, stream_id, version, commit_xid, sequence, type, schema_version, data, metadata,"
    " recorded_at, tags"
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


REFUSED = (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError)
"""Why a server refuses a connection that no retry will get: the database or the role does
not exist, the password is wrong (InvalidPasswordError is one of the second)."""


def servers(dsn: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` pairs ``dsn`` names: one, or several
    (``postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write``, which the driver
    tries in turn: a primary and its standbys). Hosts without a port get 5432."""
    netloc = urlsplit(dsn).netloc.rpartition("@")[2]
    found = []
    for server in netloc.split(",") if netloc else ["localhost"]:
        if server.startswith("["):  # [IPv6]:port
            host, _, rest = server[1:].partition("]")
            port = rest.lstrip(":")
        else:
            host, _, port = server.partition(":")
        found.append((host or "localhost", int(port) if port.isdigit() else 5432))
    return found


def where(dsn: str) -> str:
    """``HOST:PORT`` (comma-separated when several) for messages."""
    return ",".join(f"{host}:{port}" for host, port in servers(dsn))


def describe(dsn: str) -> str:
    """``database NAME at HOST:PORT`` for messages (never the password)."""
    name = unquote(urlsplit(dsn).path.lstrip("/"))
    database = f"database {name!r}" if name else "the default database"
    return f"{database} at {where(dsn)}"


def setup_error(exc: BaseException, dsn: str) -> StoreSetupError:
    """The StoreSetupError for a connection to ``dsn`` refused with one of :data:`REFUSED`,
    saying what to create or fix."""
    parts = urlsplit(dsn)
    host, port = servers(dsn)[0]
    server = f"PostgreSQL at {where(dsn)}"
    # The client tools' options to reach the same server, where the defaults would not.
    options = "" if host in ("localhost", "127.0.0.1", "::1") else f" -h {host}"
    options += "" if port == 5432 else f" -p {port}"
    # The server names what it misses in quotes ("database "x" does not exist").
    quoted = re.search(r'"([^"]*)"', str(exc))
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        name = unquote(parts.path.lstrip("/")) or (quoted[1] if quoted else "NAME")
        return StoreSetupError(
            f"{exc} on {server}",
            f"create it (createdb{options} {name}) or fix the database name in the URL",
        )
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return StoreSetupError(f"{exc} on {server}", "check the password in the URL")
    user = unquote(parts.username or "") or (quoted[1] if quoted else "NAME")
    if "does not exist" in str(exc):
        return StoreSetupError(
            f"{exc} on {server}",
            f"create it (createuser{options} {user}) or fix the user name in the URL",
        )
    return StoreSetupError(f"{exc} on {server}", "ask its administrator to let this user in")


def recorded(rows: Sequence[Any]) -> list[RecordedEvent]:
    """Rows of :data:`COLUMNS` as RecordedEvents."""
    # Unpacking the row is about twice as fast as indexing it.
    position = Position
    return [
        RecordedEvent(i, s, v, position(c, q), t, sv, d, m, at)
        if g is None
        else RecordedEvent(i, s, v, position(c, q), t, sv, d, m, at, tuple(g))
        for i, s, v, c, q, t, sv, d, m, at, g in rows
    ]
