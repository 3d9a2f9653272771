"""Writing a batch of appends on a SQLite connection: the statements, each append's own
expected-version check, savepoints, repeats recognised, and the hook run inside.

Synchronous: the event store runs it on the event loop (a batch it stages) or on its writer
thread (a batch that may wait for another process's lock).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from facta.errors import AppendConditionFailed, DuplicateEventId, WrongExpectedVersion
from facta.store.base import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    Position,
    RecordedEvent,
    TransactionHook,
    category_of,
    check_expected_version,
)
from facta.store.boundaries import AppendCondition
from facta.store.sqlite.hooks import HookSuspended, run_hook, shared_batch_hook
from facta.store.sqlite.tags import TagSQL, joined, split

COLUMNS = (
    "event_id, stream_id, version, position, type, schema_version, data, metadata, recorded_at,"
    " tags"
)


def recorded(rows: Iterable[Any]) -> list[RecordedEvent]:
    # The hot loop of every read: unpacking rows builds envelopes about twice as fast as
    # indexing them.
    envelope, position = RecordedEvent, Position
    return [
        envelope(i, s, v, position(0, p), t, sv, d, m, r)
        if g is None
        else envelope(i, s, v, position(0, p), t, sv, d, m, r, split(g))
        for i, s, v, p, t, sv, d, m, r, g in rows
    ]


def written(event: NewEvent, stream_id: str, version: int, rowid: int, now: float) -> RecordedEvent:
    """The envelope of an event just inserted as row ``rowid``."""
    return RecordedEvent(
        event.event_id,
        stream_id,
        version,
        Position(0, rowid),
        event.type,
        event.schema_version,
        event.data,
        event.metadata,
        now,
        event.tags,
    )


@dataclass(slots=True)
class Append:
    stream_id: str
    events: Sequence[NewEvent]
    expected: ExpectedVersion
    hook: TransactionHook | None
    future: asyncio.Future[AppendResult]
    result: AppendResult | None = None
    error: BaseException | None = None
    loop: asyncio.AbstractEventLoop | None = field(default=None)
    repeated: bool = False  # the result is an earlier append's (its events are stored already)
    condition: AppendCondition | None = None


def start_over(connection: sqlite3.Connection, batch: list[Append]) -> None:
    """Roll back what was written of ``batch`` and forget its outcomes, to write it again."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    for request in batch:
        request.result = request.error = None
        request.repeated = False


def fail(connection: sqlite3.Connection, batch: list[Append], error: BaseException) -> None:
    """Roll back ``batch``, whose transaction failed: each append fails (with its own error,
    if it had one)."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    for request in batch:
        request.result = None
        request.error = request.error or error


class BatchWriter:
    """The statements of the events table ``{prefix}events``, and how a batch of appends is
    written with them."""

    def __init__(self, prefix: str) -> None:
        self.prefix = p = prefix
        self.sql_version = f"SELECT max(version) FROM {p}events WHERE stream_id = ?"
        self.sql_insert = (
            f"INSERT INTO {p}events (event_id, stream_id, category, version, type,"
            " schema_version, data, metadata, recorded_at, tags)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.tags = TagSQL(p)
        # The version check rides in the VALUES: a stream found elsewhere makes the version
        # NULL, which the NOT NULL constraint refuses. (Not INSERT ... SELECT ... WHERE: a
        # SELECT that reads the table it inserts into is copied into a temporary table
        # first, which made the statement take twice as long.)
        self.sql_insert_at = (
            f"INSERT INTO {p}events (event_id, stream_id, category, version, type,"
            " schema_version, data, metadata, recorded_at) VALUES (?, ?, ?,"
            f" CASE WHEN (SELECT coalesce(max(version), 0) FROM {p}events WHERE stream_id = ?)"
            " = ? THEN ? END, ?, ?, ?, ?, ?)"
        )
        self.sql_by_id = f"SELECT {COLUMNS} FROM {p}events WHERE event_id = ?"

    def write(
        self,
        batch: list[Append],
        connection: sqlite3.Connection,
        *,
        commit: bool = True,
    ) -> None:
        """One transaction for the whole batch, on ``connection``; with ``commit=False`` a
        transaction that wrote anything is left open for the caller."""
        if commit and len(batch) == 1 and self.write_one_statement(connection, batch[0]):
            return
        hook = shared_batch_hook(batch)
        if hook is not None and self._write_with_batch_hook(connection, batch, hook, commit):
            return
        isolate = len(batch) > 1
        connection.execute("BEGIN IMMEDIATE")
        try:
            for request in batch:
                if isolate and self.write_one_statement(connection, request, in_batch=True):
                    continue  # a failed statement writes nothing: no savepoint needed
                if isolate:
                    connection.execute("SAVEPOINT append")
                try:
                    request.result = self._append_one(connection, request)
                except Exception as exc:
                    request.error = exc
                    if isolate:
                        connection.execute("ROLLBACK TO append")
                    else:
                        connection.execute("ROLLBACK")
                        return
                if isolate:
                    connection.execute("RELEASE append")
            if commit:
                connection.execute("COMMIT")
        except HookSuspended:
            raise  # the caller rolls back and hands the batch to the writer thread
        except BaseException as exc:
            fail(connection, batch, exc)

    def _write_with_batch_hook(
        self,
        connection: sqlite3.Connection,
        batch: list[Append],
        hook: TransactionHook,
        commit: bool = True,
    ) -> bool:
        """The batch in one transaction with its hook run once for all of its new events.
        If the hook fails, nothing is kept and False returned: the batch is then written
        with the hook run per append, so that only the append that makes it fail fails."""
        connection.execute("BEGIN IMMEDIATE")
        try:
            records: list[RecordedEvent] = []
            for request in batch:
                if self.write_one_statement(connection, request, in_batch=True, hooked=True):
                    assert request.result is not None
                    records.extend(request.result.events)
                    continue
                connection.execute("SAVEPOINT append")
                try:
                    result = self._append_one(connection, request, with_hook=False)
                except Exception as exc:
                    request.error = exc
                    connection.execute("ROLLBACK TO append")
                else:
                    request.result = result
                    if not request.repeated:
                        records.extend(result.events)
                connection.execute("RELEASE append")
            if records:
                assert batch[0].loop is not None
                run_hook(hook, connection, records, batch[0].loop)
            if commit:
                connection.execute("COMMIT")
            return True
        except Exception:
            start_over(connection, batch)
            return False

    def write_one_statement(
        self,
        connection: sqlite3.Connection,
        request: Append,
        *,
        in_batch: bool = False,
        hooked: bool = False,
    ) -> bool:
        """The commonest append, one event at a known version, as one statement that checks
        the version and inserts. Alone, it is its own transaction: a third of the round
        trips of BEGIN, check, insert, COMMIT; in a batch, it needs no savepoint, since a
        statement that fails writes nothing. Returns False, having written nothing, for
        anything else and for every unusual outcome (a conflict, a repeated event id), which
        the general path then sorts out. ``hooked``: the caller runs the hook itself."""
        expected, events = request.expected, request.events
        if (request.hook is not None and not hooked) or len(events) != 1:
            return False
        if request.condition is not None or events[0].tags:
            return False
        if type(expected) is not int:
            return False
        if expected < 0:
            return False
        event, stream_id, now = events[0], request.stream_id, time.time()
        try:
            cursor = connection.execute(
                self.sql_insert_at,
                (
                    event.event_id,
                    stream_id,
                    category_of(stream_id),
                    stream_id,
                    expected,
                    expected + 1,
                    event.type,
                    event.schema_version,
                    event.data,
                    event.metadata,
                    now,
                ),
            )
        except sqlite3.IntegrityError:  # the stream is elsewhere, or the event id is taken
            return False
        except Exception as exc:
            if in_batch:  # not this append's fault (a full disk, say): the batch fails
                raise
            request.error = exc
            return True
        assert cursor.lastrowid is not None
        stored = written(event, stream_id, expected + 1, cursor.lastrowid, now)
        request.result = AppendResult(stream_id, expected + 1, stored.position, (stored,))
        return True

    def _append_one(
        self, connection: sqlite3.Connection, request: Append, *, with_hook: bool = True
    ) -> AppendResult:
        stream_id, events = request.stream_id, request.events
        if request.condition is not None and events:
            # A repeat first: the first append of these events makes its condition fail now.
            if connection.execute(self.sql_by_id, (events[0].event_id,)).fetchone():
                request.repeated = True
                return self._repeat(connection, stream_id, events)
            self._check(connection, request.condition)
        actual = connection.execute(self.sql_version, (stream_id,)).fetchone()[0] or 0
        try:
            check_expected_version(stream_id, request.expected, actual)
        except WrongExpectedVersion:
            # A repeated append usually finds the stream moved on by its first try.
            if events and connection.execute(self.sql_by_id, (events[0].event_id,)).fetchone():
                request.repeated = True
                return self._repeat(connection, stream_id, events)
            raise
        if not events:
            last = connection.execute(f"SELECT max(position) FROM {self.prefix}events").fetchone()
            return AppendResult(stream_id, actual, Position(0, last[0] or 0), ())
        now = time.time()
        category = category_of(stream_id)
        appended = []
        insert = self.sql_insert
        for offset, event in enumerate(events, 1):
            version = actual + offset
            try:
                cursor = connection.execute(
                    insert,
                    (
                        event.event_id,
                        stream_id,
                        category,
                        version,
                        event.type,
                        event.schema_version,
                        event.data,
                        event.metadata,
                        now,
                        joined(event.tags),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                # Not looked up beforehand: the unique index finds a repeat for free. Only
                # the first event's id can start a repeat (nothing of this append is written).
                if offset == 1:
                    request.repeated = True
                    return self._repeat(connection, stream_id, events)
                raise DuplicateEventId(event.event_id, str(exc)) from None
            assert cursor.lastrowid is not None
            if event.tags:
                self.tags.write(connection, event.tags, cursor.lastrowid)
            appended.append(written(event, stream_id, version, cursor.lastrowid, now))
        if request.hook is not None and with_hook:
            assert request.loop is not None
            run_hook(request.hook, connection, appended, request.loop)
        last = appended[-1]
        return AppendResult(stream_id, last.version, last.position, tuple(appended))

    def _check(self, connection: sqlite3.Connection, condition: AppendCondition) -> None:
        """AppendConditionFailed if an event matching the condition's query was appended
        after its position (in this transaction too: earlier appends of the batch count)."""
        after = 0 if condition.after is None else condition.after.sequence
        sql, parameters = self.tags.matching(
            "event_id, position", condition.fail_if_events_match, after, 1
        )
        found = connection.execute(sql, parameters).fetchone()
        if found is not None:
            raise AppendConditionFailed(found[0], Position(0, found[1]))

    def _repeat(
        self, connection: sqlite3.Connection, stream_id: str, events: Sequence[NewEvent]
    ) -> AppendResult:
        """The result of the first append of these event ids, or DuplicateEventId."""
        stored = []
        for event in events:
            row = connection.execute(self.sql_by_id, (event.event_id,)).fetchone()
            if row is None or row[1] != stream_id:
                where = "not all of them" if row is None else f"in stream {row[1]!r}"
                raise DuplicateEventId(event.event_id, f"an earlier append stored {where}")
            stored.extend(recorded([row]))
        return AppendResult(stream_id, stored[-1].version, stored[-1].position, tuple(stored))
