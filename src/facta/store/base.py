"""The EventStore contract: the one seam between everything above and every database.

A backend is one module that implements :class:`EventStore`; the conformance suite in
``tests/store/test_conformance.py`` runs against every backend.
"""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from facta._ids import new_uuid
from facta.errors import InvalidStreamId, WrongExpectedVersion


class StreamState(enum.Enum):
    """Expected versions that are not a number."""

    NO_STREAM = "NO_STREAM"  # the stream must not exist yet
    STREAM_EXISTS = "STREAM_EXISTS"  # the stream must have at least one event
    ANY = "ANY"  # no check


NO_STREAM = StreamState.NO_STREAM
STREAM_EXISTS = StreamState.STREAM_EXISTS
ANY = StreamState.ANY

ExpectedVersion = int | StreamState


class Position(msgspec.Struct, frozen=True, order=True, gc=False, array_like=True):
    """A place in the global log; what checkpoints store.

    Ordered as a pair. Single-writer backends (memory, SQLite) leave ``commit`` at 0 and
    number events in ``sequence``; PostgreSQL puts the writing transaction's id in ``commit``
    so that a reader never passes an event that commits later with a lower sequence.

    A frozen struct rather than a named tuple: every event read makes one, and a struct is
    made in less than half the time and is never tracked by the garbage collector (a
    tuple subclass always is: on a whole-log read the collector's passes over them cost
    about a tenth of the read). JSON: ``[commit, sequence]``, as before.
    """

    commit: int
    sequence: int

    def __str__(self) -> str:
        return str(self.sequence) if self.commit == 0 else f"{self.commit}:{self.sequence}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """Read the form ``str()`` gives: ``"SEQUENCE"`` or ``"COMMIT:SEQUENCE"``.

        Raises ValueError for anything else.
        """
        parts = text.split(":")
        if len(text) > 41 or len(parts) > 2 or not all(p.isdigit() and p.isascii() for p in parts):
            raise ValueError(f"not a log position: {text!r}")
        return cls(0, int(parts[0])) if len(parts) == 1 else cls(int(parts[0]), int(parts[1]))


START = Position(0, 0)
"""The position before the first event."""


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """An event to append: its type, encoded JSON data and metadata, and a unique id.

    Reusing an ``event_id`` makes an append idempotent: the second append of the same ids to
    the same stream writes nothing and returns the first result.
    """

    type: str
    data: bytes
    schema_version: int = 1
    metadata: bytes = b"{}"
    event_id: str = msgspec.field(default_factory=new_uuid)


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as stored.

    ``data`` and ``metadata`` are JSON bytes (the codec decodes ``data``; :attr:`meta` decodes
    the metadata on each access). ``recorded_at`` is Unix time in seconds.
    """

    event_id: str
    stream_id: str
    version: int
    position: Position
    type: str
    schema_version: int
    data: bytes
    metadata: bytes
    recorded_at: float

    @property
    def meta(self) -> dict[str, Any]:
        """The metadata as a dict (correlation_id, causation_id, command_id, free keys)."""
        value: dict[str, Any] = msgspec.json.decode(self.metadata)
        return value

    @property
    def category(self) -> str:
        """The stream's category: the part of the stream id before the first ``-``."""
        return category_of(self.stream_id)

    @property
    def recorded_datetime(self) -> datetime:
        """``recorded_at`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.recorded_at, UTC)


class AppendResult(msgspec.Struct, frozen=True, gc=False):
    """What an append wrote: the stream's version after it and the last event's position."""

    stream_id: str
    version: int
    position: Position
    events: tuple[RecordedEvent, ...]


class Snapshot(msgspec.Struct, frozen=True, gc=False):
    """A stream's encoded state at a version; ``schema_version`` is the state shape's version."""

    stream_id: str
    version: int
    schema_version: int
    data: bytes
    recorded_at: float


TransactionHook = Callable[[Any, Sequence[RecordedEvent]], Awaitable[None]]
"""Work that runs inside an append's transaction (inline projections).

It receives the backend's transaction handle and the events being recorded; raising rolls the
append back and the error reaches the caller of ``append``.

A hook with the attribute ``takes_batches = True`` lets the store group commit the appends
that carry it: it is then called once with the events of several appends committed in one
transaction, in append order (possibly from several streams). If it raises, the store tries
the appends again in smaller groups, so that in the end only the append that made it fail is
rolled back and gets the error; the hook must therefore not keep effects outside the
transaction. Without the attribute, each append runs the hook in a transaction of its own.

On SQLite, a hook with ``runs_on_writer_thread = True`` declares that it only works on the
transaction, synchronously: the store then runs it in place (on its writer thread, or on the
event loop where it writes a group commit's statements) instead of sending it to the loop
and waiting. Should it suspend after all, its batch is rolled back and written again on the
writer thread, the hook called anew.
"""


@runtime_checkable
class EventStore(Protocol):
    """Appends to streams with optimistic concurrency, reads streams and the global log."""

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        hook: TransactionHook | None = None,
    ) -> AppendResult:
        """Append ``events`` atomically if the stream is at ``expected_version``.

        Raises WrongExpectedVersion (nothing written) on a mismatch, DuplicateEventId when an
        event id is stored elsewhere. Re-appending the same event ids returns the first result.
        """
        ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream with ``from_version <= version <= to_version``, in version order
        (descending when ``backwards``, starting from ``to_version``)."""
        ...

    async def read_all(
        self,
        *,
        after: Position = START,
        limit: int = 1000,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        wait_for_held_back: bool = True,
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events of the global log after ``after``, in log order, filtered.

        Where committed events can be held back behind a transaction still running
        (PostgreSQL), a short page first waits a little for them (the store's
        ``visibility_wait``), so that a one-off read sees what was just committed. A reader
        that follows the log and reads again when woken passes ``wait_for_held_back=False``
        and gets what is visible now, at once: under a steady stream of appends something is
        nearly always in flight, and each such read would otherwise poll the server until the
        wait ran out. Stores with one writer (memory, SQLite) never hold events back.
        """
        ...

    def subscribe(
        self,
        *,
        after: Position = START,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from ``after``, then follow new events live, forever."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 if it has no events)."""
        ...

    async def head(self) -> Position:
        """The position of the last event readers can see (START when empty)."""
        ...

    async def find_event(self, event_id: str) -> RecordedEvent | None:
        """The stored event with this id, if any."""
        ...

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot (replacing one at the same stream and version)."""
        ...

    async def load_snapshot(
        self,
        stream_id: str,
        *,
        max_version: int | None = None,
        max_recorded_at: float | None = None,
    ) -> Snapshot | None:
        """The latest snapshot at or below ``max_version`` whose event was recorded at or
        before ``max_recorded_at``."""
        ...

    async def wait_for_events(self, after: Position, max_wait: float) -> None:
        """Return when the log may hold events after ``after``, or after ``max_wait`` seconds."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...


def check_expected_version(stream_id: str, expected: ExpectedVersion, actual: int) -> None:
    """Raise WrongExpectedVersion unless a stream at ``actual`` satisfies ``expected``
    (ValueError for a negative version, which no stream can be at)."""
    if isinstance(expected, int) and expected < 0:
        raise ValueError(f"expected version must be 0 or more, not {expected}")
    if expected is ANY:
        return
    if expected is NO_STREAM:
        ok = actual == 0
    elif expected is STREAM_EXISTS:
        ok = actual > 0
    else:
        ok = actual == expected
    if not ok:
        raise WrongExpectedVersion(stream_id, expected, actual)


_STREAM_ID = re.compile(r"[A-Za-z0-9_.:@+=~-]{1,300}")


def validate_stream_id(stream_id: str) -> str:
    """Return ``stream_id`` if it is 1 to 300 characters of letters, digits and ``_.:@+=~-``."""
    if not _STREAM_ID.fullmatch(stream_id):
        raise InvalidStreamId(
            f"stream id {stream_id[:80]!r} must be 1-300 characters of letters, digits and _.:@+=~-"
        )
    return stream_id


def category_of(stream_id: str) -> str:
    """The category of a stream: the part of its id before the first ``-``."""
    return stream_id.partition("-")[0]
