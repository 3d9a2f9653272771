"""The PostgreSQL event store: several processes writing at once, readers that never skip.

Open it with ``await PostgresEventStore.open("postgresql://user@host/db", schema=..., prefix=...)``
or ``open_store("postgresql://user@host/db?schema=...&prefix=...")``; both migrate the schema
first (:meth:`PostgresEventStore.migrate`, what ``facta migrate`` runs).

Global order. Every event row carries the id of the transaction that wrote it (``commit_xid``,
``pg_current_xact_id()``) and a sequence number, and the log is ordered by that pair (it is the
event's :class:`~facta.store.base.Position`). Readers return only rows whose transaction id is
below the ``xmin`` of their snapshot: every transaction below it has ended, and every one still
running or yet to start has a larger id, so no row can later commit in front of a position a
reader has passed. Writers take no lock but the unique index entries of their own stream, so
they never queue behind each other. The price: a transaction that holds an id for long
*anywhere in the cluster* (another app, a forgotten ``BEGIN`` in psql) holds delivery of every
later event back until it ends. It never costs correctness, only lag; :meth:`held_back` counts
the events that are committed but not deliverable yet, and ``pg_stat_activity`` (``backend_xid``,
``xact_start``) names the transaction to blame. So that a caller reads its own writes although
short transactions are always running somewhere, ``read_all`` and ``head`` wait up to
``visibility_wait`` (0.5 s) for held-back events before they answer; subscriptions do not wait,
they deliver what is visible and are woken again by the next commit.

Appending. One round trip per append: a plpgsql function (``{prefix}append``) checks the
expected version, inserts, recognises a retry of the same event ids, and signals listeners with
``pg_notify``, which PostgreSQL delivers on commit. (A write that races another process's to
the same stream version, or event id, fails on the unique index; the store then reads what
won and answers WrongExpectedVersion, or the earlier result for a retry.) Appends that arrive
while another is in flight are queued and sent together (group commit): one call, one
transaction, one fsync, each request still checked against its own expected version and
succeeding or failing on its own.
Appends with a transaction hook (inline projections) run in their own transaction: the hook gets
the asyncpg connection with the transaction open, and an error in it rolls the append back.

Durability: PostgreSQL's own (``synchronous_commit`` on by default): an acknowledged append has
been flushed to the WAL. Connections that cannot be made or are lost raise StoreUnavailable; an
append that raises it may or may not have committed, and retrying it with the same event ids is
safe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from facta.errors import DuplicateEventId
from facta.store._follow import follow
from facta.store._migrations import validate_identifier
from facta.store.base import (
    ANY,
    START,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    Position,
    RecordedEvent,
    Snapshot,
    TransactionHook,
    check_expected_version,
    check_hook,
    validate_stream_id,
)
from facta.store.boundaries import AppendCondition
from facta.store.postgres.append import GroupCommit
from facta.store.postgres.common import (
    LOST,
    REFUSED,
    drop_if_lost,
    lost,
    recorded,
    setup_error,
    unavailable,
    where,
)
from facta.store.postgres.follow import Listener
from facta.store.postgres.pooling import connection_options, pooled
from facta.store.postgres.read_ahead import ReadAhead
from facta.store.postgres.schema import migrate, require_schema
from facta.store.postgres.statements import Statements

_READ_AHEAD_FROM = 1000
"""Reads of the log with at least this limit fetch the next page while the caller works on
this one: a reader going through the log keeps the server and itself busy at once."""

COMMAND_TIMEOUT = 30.0
"""Seconds one statement may go unanswered by default (see PostgresEventStore)."""

_OPTIONS = {
    "command_timeout",
    "schema",
    "prefix",
    "pool_size",
    "application_name",
    "max_flushes",
    "visibility_wait",
    "notify",
    "pooler",
}


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset that sends nothing: the store leaves no session state behind, and asyncpg's
    default reset would cost a round trip on every release."""


class PostgresEventStore:
    """An EventStore in a PostgreSQL schema. Open it with :meth:`open` (migrates the schema).

    ``schema`` and ``prefix`` (lowercase identifiers) place the tables, so several apps or
    tenants can share one database. Connections: a pool of up to ``pool_size`` for reads and
    hooked appends, up to ``max_flushes`` for group commits (the number of append
    transactions in flight at once), and one that listens for new events.
    ``visibility_wait`` bounds how long :meth:`read_all` and :meth:`head` wait for committed
    events that another transaction holds back (0 turns waiting off). ``notify=False`` leaves
    out the notification of each append transaction (it costs a commit 10-20% on its own):
    subscribers, in this process or any other, then notice new events by polling only, up to
    a second late. ``command_timeout`` bounds how long one statement may go unanswered
    before it fails as StoreUnavailable (0: no bound): a server that stops answering (a
    network cut, with no reset to say so) would otherwise hold a request for the TCP
    retransmission timeout, about 15 minutes. Migrations are not bounded by it.
    ``pooler="transaction"``: the URL names a transaction-pooling pooler such as PgBouncer
    (see :mod:`facta.store.postgres.pooling`).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        prefix: str = "",
        pool_size: int | str = 10,
        application_name: str = "facta",
        max_flushes: int | str = 2,
        visibility_wait: float | str = 0.5,
        notify: bool | str = True,
        command_timeout: float | str = COMMAND_TIMEOUT,
        pooler: str = "",
    ) -> None:
        self.dsn = dsn
        self.pooled = pooled(pooler)
        self.schema = validate_identifier(schema, "schema")
        self.prefix = validate_identifier(prefix, "table prefix", allow_empty=True)
        self.pool_size = int(pool_size)
        self.max_flushes = int(max_flushes)
        self.visibility_wait = float(visibility_wait)
        self.command_timeout = float(command_timeout) or None
        if self.command_timeout is not None and self.command_timeout < 0:
            raise ValueError("command_timeout must be 0 (no bound) or more")
        self.notify = notify if isinstance(notify, bool) else notify.lower() in ("1", "true", "yes")
        if self.pool_size < 1 or self.max_flushes < 1:
            raise ValueError("pool_size and max_flushes must be at least 1")
        self._connection_options = connection_options(application_name, pooled=self.pooled)
        self.where = f"{where(dsn)}{urlsplit(dsn).path}"
        self._pool: asyncpg.Pool | None = None
        self._read_ahead = ReadAhead()
        self.channel = f"facta.{self.schema}.{self.prefix}events"
        self.listener = Listener(
            self.connect, self.channel, lambda: self._head(0), listen=not self.pooled
        )
        self._appender = GroupCommit(self)
        self.sql = Statements(f"{self.schema}.{self.prefix}")

    @classmethod
    async def open(cls, dsn: str, *, create: bool = True, **options: Any) -> Self:
        """Connect to ``dsn`` and migrate the schema.

        Options may also come as query parameters of ``dsn`` (``?schema=app&prefix=t1_``);
        keyword arguments win. With ``create=False`` nothing is created or migrated: the
        schema must hold a facta store with every migration applied. Raises StoreUnavailable
        when the server cannot be reached, StoreSetupError when the database or role does
        not exist, the password is refused or (``create=False``) there is no such store,
        ValueError for a bad schema, prefix or size.
        """
        parts = urlsplit(dsn)
        query = parse_qsl(parts.query)
        mine = {k: v for k, v in query if k in _OPTIONS}
        rest = urlencode([(k, v) for k, v in query if k not in _OPTIONS])
        store = cls(urlunsplit(parts._replace(query=rest)), **{**mine, **options})
        try:
            if not create:
                await store._require_schema()
                return store
            await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    # -- connections ---------------------------------------------------------------------

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own, outside the pool, with the store's settings (for the
        listener, group-commit writers and the engine's other components)."""
        try:
            connection: asyncpg.Connection = await asyncpg.connect(
                self.dsn,
                **self._connection_options,
                timeout=10,
                command_timeout=self.command_timeout,
            )
        except REFUSED as exc:
            raise setup_error(exc, self.dsn) from None
        except LOST as exc:
            raise unavailable(exc, self.where) from exc
        return connection

    async def pool(self) -> asyncpg.Pool:
        """The store's connection pool (made on first use)."""
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    **self._connection_options,
                    reset=_keep_session,
                    timeout=10,
                    command_timeout=self.command_timeout,
                )
            except REFUSED as exc:
                raise setup_error(exc, self.dsn) from None
            except LOST as exc:
                raise unavailable(exc, self.where) from exc
        return self._pool

    async def fetch(self, sql: str, *arguments: Any) -> list[Any]:
        """The rows of one statement run on the pool; StoreUnavailable when the server
        cannot be reached (for the engine's other components as much as the store)."""
        pool = self._pool or await self.pool()
        try:
            async with pool.acquire() as connection:
                try:
                    rows: list[Any] = await connection.fetch(sql, *arguments)
                except BaseException as exc:
                    drop_if_lost(connection, exc)
                    raise
        except Exception as exc:
            if lost(exc):
                raise unavailable(exc, self.where) from exc
            raise
        return rows

    # -- schema --------------------------------------------------------------------------

    async def _require_schema(self) -> None:
        await require_schema(self)

    async def migrate(self) -> list[int]:
        """Create or bring up to date this store's schema; returns the versions applied
        (see :func:`facta.store.postgres.schema.migrate`)."""
        return await migrate(self)

    # -- appending -----------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
        condition: AppendCondition | None = None,
    ) -> AppendResult:
        """Append (see :class:`~facta.store.base.EventStore`); with ``condition`` (and no
        hook), only if it holds, checked in the append's transaction (see locks.py)."""
        validate_stream_id(stream_id)
        if hook is not None:
            check_hook(hook)
        if isinstance(expected_version, int) and expected_version < 0:
            raise ValueError(f"expected version must be 0 or more, not {expected_version}")
        if not events:
            return await self._append_nothing(stream_id, expected_version)
        if len(events) > 1 and len({e.event_id for e in events}) != len(events):
            raise DuplicateEventId(events[0].event_id, "the same id twice in one append")
        if hook is not None and not hook.takes_batches:
            return await self._appender.append_with_hook(stream_id, events, expected_version, hook)
        return await self._appender.append(stream_id, events, expected_version, hook, condition)

    async def _append_nothing(self, stream_id: str, expected: ExpectedVersion) -> AppendResult:
        actual = await self.stream_version(stream_id)
        check_expected_version(stream_id, expected, actual)
        return AppendResult(stream_id, actual, await self.head(), ())

    # -- reading -------------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        rows = await self.fetch(
            self.sql.stream["DESC" if backwards else "ASC"],
            stream_id,
            from_version,
            2**62 if to_version is None else to_version,
            limit,  # NULL: no limit
        )
        return recorded(rows)

    async def read_all(
        self,
        *,
        after: Position = START,
        limit: int = 1000,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        wait_for_held_back: bool = True,
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events after ``after`` in log order, of transactions that have all
        ended before every transaction still running (see the module's notes on lag).

        A short page while committed events are held back waits up to ``visibility_wait``
        seconds for the transactions in the way to end, as short ones do, and reads on;
        with ``wait_for_held_back=False`` it answers at once with what is visible.
        """
        wait = self.visibility_wait if wait_for_held_back else 0
        return await self._read(after, limit, categories, types, wait)

    async def _read(
        self,
        after: Position,
        limit: int,
        categories: Sequence[str] | None,
        types: Sequence[str] | None,
        visibility_wait: float,
    ) -> list[RecordedEvent]:
        filters: list[Any] = []
        if categories:
            filters.append(list(categories))
        if types:
            filters.append(list(types))
        key = bool(categories), bool(types)
        sql = self.sql.page[key]
        ahead = (after, limit, tuple(categories or ()), tuple(types or ()))
        rows = await self._read_ahead.take(ahead, limit)
        if rows is None:
            rows = await self.fetch(sql, after.commit, after.sequence, limit, *filters)
        if len(rows) == limit:
            if limit >= _READ_AHEAD_FROM:
                following = Position(rows[-1][3], rows[-1][4])
                self._read_ahead.start(
                    (following, *ahead[1:]),
                    self.fetch(sql, following.commit, following.sequence, limit, *filters),
                )
            return recorded(rows)
        if visibility_wait <= 0:
            return recorded(rows)
        # A short page: read the rest together with whether anything is held back, and
        # while it is, wait a little and read on.
        page = list(rows)
        deadline = time.monotonic() + visibility_wait
        delay = 0.001
        while True:
            commit, sequence = (
                (page[-1][3], page[-1][4]) if page else (after.commit, after.sequence)
            )
            more = await self.fetch(
                self.sql.page_held[key], commit, sequence, limit - len(page), *filters
            )
            page += [r[:11] for r in more if r[0] is not None]
            if len(page) == limit or not more[0][11] or time.monotonic() + delay > deadline:
                return recorded(page)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.02)

    def subscribe(
        self,
        *,
        after: Position = START,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up, then follow live; when the server drops the connection, reconnect (with
        back-off) and resume after the last event delivered, so nothing is lost or repeated.

        Pages are delivered as soon as they are visible (no ``visibility_wait``): new ones
        arrive by notification, or by polling when notifications cannot.
        """
        return follow(
            self,
            after=after,
            categories=categories,
            types=types,
            batch_size=batch_size,
            head=self.visible_head,
        )

    async def stream_version(self, stream_id: str) -> int:
        rows = await self.fetch(self.sql.version, stream_id)
        return int(rows[0][0])

    async def head(self) -> Position:
        """The last event readers can see: the same visibility rule, and the same short wait
        for transactions in the way, as :meth:`read_all`."""
        return await self._head(self.visibility_wait)

    async def visible_head(self) -> Position:
        """The last event readers can see now, without waiting for held-back ones."""
        return await self._head(0)

    async def _head(self, visibility_wait: float) -> Position:
        deadline = time.monotonic() + visibility_wait
        delay = 0.001
        while True:
            [(commit, sequence, held)] = await self.fetch(self.sql.head)
            if not held or time.monotonic() + delay > deadline:
                return START if commit is None else Position(commit, sequence)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.02)

    async def held_back(self) -> int:
        """How many committed events readers cannot see yet because an older transaction in
        the cluster is still running (the delivery lag the module's notes describe)."""
        rows = await self.fetch(self.sql.held_back)
        return int(rows[0][0])

    async def find_event(self, event_id: str) -> RecordedEvent | None:
        rows = await self.fetch(self.sql.by_ids, [event_id])
        return recorded(rows)[0] if rows else None

    # -- snapshots -----------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.fetch(
            f"INSERT INTO {self.schema}.{self.prefix}snapshots"
            " (stream_id, version, schema_version, recorded_at, data)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream_id, version) DO UPDATE SET"
            " schema_version = excluded.schema_version, recorded_at = excluded.recorded_at,"
            " data = excluded.data",
            snapshot.stream_id,
            snapshot.version,
            snapshot.schema_version,
            snapshot.recorded_at,
            snapshot.data,
        )

    async def load_snapshot(
        self,
        stream_id: str,
        *,
        max_version: int | None = None,
        max_recorded_at: float | None = None,
    ) -> Snapshot | None:
        rows = await self.fetch(
            "SELECT stream_id, version, schema_version, data, recorded_at"
            f" FROM {self.schema}.{self.prefix}snapshots"
            " WHERE stream_id = $1 AND version <= $2 AND recorded_at <= $3"
            " ORDER BY version DESC LIMIT 1",
            stream_id,
            2**62 if max_version is None else max_version,
            float("inf") if max_recorded_at is None else max_recorded_at,
        )
        return Snapshot(*rows[0]) if rows else None

    # -- waiting and closing -------------------------------------------------------------

    async def wait_for_events(self, after: Position, max_wait: float) -> None:
        """Return when the log may hold events after ``after``: at a notification from any
        process's commit, or after ``max_wait`` (the polling fallback while not listening)."""
        await self.listener.wait(after, max_wait)

    async def close(self) -> None:
        self._read_ahead.clear()
        await self._appender.close()
        await self.listener.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                async with asyncio.timeout(10):
                    await pool.close()
            except LOST:  # includes TimeoutError
                pool.terminate()
