"""The event store contract, and the values it appends, stores and reads.

Every engine implements :class:`EventStore` (see :mod:`facta.store.engine` for the engine
around it and the optional capabilities); the conformance suite runs against each.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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


class Seal(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A top-level field of a NewEvent's data that holds personal data: the engine encrypts
    it with its data subject's key on append (:mod:`facta.personal`).

    ``field`` is its name in the JSON object; ``subject`` the data subject's id (None: the
    stream the event is appended to); ``redacted`` the JSON of the value readers get once
    the subject is forgotten.
    """

    field: str
    subject: str | None
    redacted: bytes


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """An event to append: its type, encoded JSON data and metadata, and a unique id.

    Reusing an ``event_id`` makes an append idempotent: the second append of the same ids to
    the same stream writes nothing and returns the first result. ``tags`` are what queries of
    consistency boundaries select by (:mod:`facta.store.boundaries`). ``personal`` names the
    fields of ``data`` to encrypt before they are stored (the codec fills it from the event
    class's :class:`~facta.Personal` fields); an engine without personal-data keys refuses
    such an event rather than store it in clear.
    """

    type: str
    data: bytes
    schema_version: int = 1
    metadata: bytes = b"{}"
    event_id: str = msgspec.field(default_factory=new_uuid)
    tags: tuple[str, ...] = ()
    personal: tuple[Seal, ...] = ()


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
    tags: tuple[str, ...] = ()

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


class Transaction(Protocol):
    """An append's open transaction, as a :class:`TransactionHook` receives it.

    Each engine passes its own kind; its read-model store writes projection documents into
    it (so an inline projection's code runs the same on every engine), and ``connection``
    is the database driver's own connection inside the transaction, for SQL written by
    hand (which is engine-specific by nature; None where there is no database).
    """

    @property
    def connection(self) -> Any:
        """The driver's connection, inside the append's transaction."""
        ...


class TransactionHook(Protocol):
    """Work that runs inside an append's transaction (inline projections), for engines with
    the InlineTransactions capability.

    It receives the append's :class:`Transaction` and the events being recorded; raising
    rolls the append back and the error reaches the caller of ``append``.

    ``takes_batches``: the engine may group commit the appends that carry this hook, calling
    it once with the events of several appends committed in one transaction, in append order
    (possibly from several streams). If it raises, the engine tries the appends again in
    smaller groups, so that in the end only the append that made it fail is rolled back and
    gets the error; the hook must therefore keep no effects outside the transaction. When
    False, each append runs the hook in a transaction of its own.

    ``runs_in_place``: the hook only works on the transaction and never waits on anything
    else, so an engine that writes off the event loop (SQLite's writer thread) may run it
    right there instead of handing it back to the loop and waiting. Should it suspend after
    all, the engine rolls its batch back and writes it again the slow way, the hook called
    anew.
    """

    @property
    def takes_batches(self) -> bool:
        """Whether one call may cover several appends committed together."""
        ...

    @property
    def runs_in_place(self) -> bool:
        """Whether it does only synchronous work on the transaction."""
        ...

    def __call__(self, tx: Transaction, records: Sequence[RecordedEvent], /) -> Awaitable[None]:
        """Do the work for ``records`` inside ``tx``; raise to roll the append back."""
        ...


def check_hook(hook: TransactionHook) -> TransactionHook:
    """``hook`` if it says how it may be run; TypeError (before anything is queued or
    written) for a bare function, which must be wrapped in :class:`Hook`."""
    try:
        hook.takes_batches, hook.runs_in_place  # noqa: B018 - read to check they are there
    except AttributeError:
        raise TypeError(
            f"{hook!r} is not a TransactionHook: wrap a function in Hook(function) (with"
            " takes_batches and runs_in_place saying how it may be run)"
        ) from None
    return hook


@dataclass(frozen=True)
class Hook:
    """A function as a :class:`TransactionHook`, with how it may be run."""

    function: Callable[[Transaction, Sequence[RecordedEvent]], Awaitable[None]]
    takes_batches: bool = False
    runs_in_place: bool = False

    def __call__(self, tx: Transaction, records: Sequence[RecordedEvent]) -> Awaitable[None]:
        """Call the function."""
        return self.function(tx, records)


@runtime_checkable
class EventStore(Protocol):
    """What every engine's event store does: append to streams with optimistic concurrency,
    read streams and the global log in order, and say when new events may have come.

    Snapshots, hooks inside the append's transaction and better ways of following the log
    are optional capabilities (:mod:`facta.store.engine`); following the log, by default,
    reads it whenever :meth:`wait_for_events` returns.
    """

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append ``events`` atomically if the stream is at ``expected_version``.

        Raises WrongExpectedVersion (nothing written) on a mismatch, DuplicateEventId when an
        event id is stored elsewhere, InvalidStreamId for a bad id. Re-appending the same
        event ids returns the first result and writes nothing.
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

        Never skips an event that commits later with a lower position (gap-safe). Where
        committed events can be held back behind a transaction still running (PostgreSQL), a
        short page first waits a little for them, so that a one-off read sees what was just
        committed; a reader that follows the log passes ``wait_for_held_back=False`` and gets
        what is visible now. Stores with one writer never hold events back.
        """
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
