"""Cold storage for archived events: compressed files in a directory, and their index.

The directory holds ``chunks/*.jsonl.gz``, each up to a few thousand events in log order,
one JSON object per line (readable with ``zcat``; ``data`` and ``metadata`` are the stored
JSON as strings, so what comes back is byte for byte what was stored), and ``index.sqlite``,
which says which chunks hold which position range and which versions of which stream, and
where each event id is (by a 64-bit hash of it and its position: about 18 bytes an event,
not the id and the chunk's name).
Several processes may read one directory (on one host, or a shared file system); one
archiver writes it at a time. A chunk is written whole under a temporary name and renamed,
and entered in the index in one transaction: readers see all of it or none of it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from facta.store.base import Position, RecordedEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    name TEXT PRIMARY KEY,
    first_commit INTEGER NOT NULL, first_sequence INTEGER NOT NULL,
    last_commit INTEGER NOT NULL, last_sequence INTEGER NOT NULL,
    events INTEGER NOT NULL, bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT NOT NULL, chunk TEXT NOT NULL,
    first_version INTEGER NOT NULL, last_version INTEGER NOT NULL,
    PRIMARY KEY (stream_id, first_version)
);
CREATE INDEX IF NOT EXISTS streams_by_chunk ON streams (chunk);
CREATE TABLE IF NOT EXISTS event_ids (
    id_hash INTEGER NOT NULL, commit_position INTEGER NOT NULL, sequence INTEGER NOT NULL,
    PRIMARY KEY (id_hash, commit_position, sequence)
) WITHOUT ROWID;
"""


def _id_hash(event_id: str) -> int:
    """An event id's key in the index: 64 bits of its hash (ids that share one are told
    apart by reading their chunks)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _Line(msgspec.Struct, frozen=True, gc=False):
    """One archived event as a line of a chunk."""

    event_id: str
    stream_id: str
    version: int
    position: tuple[int, int]
    type: str
    schema_version: int
    data: str
    metadata: str
    recorded_at: float
    tags: tuple[str, ...] = ()


def _line(record: RecordedEvent) -> _Line:
    return _Line(
        record.event_id,
        record.stream_id,
        record.version,
        (record.position.commit, record.position.sequence),
        record.type,
        record.schema_version,
        record.data.decode(),
        record.metadata.decode(),
        record.recorded_at,
        record.tags,
    )


def _id_row(record: RecordedEvent) -> tuple[int, int, int]:
    """The index's row for an archived event's id."""
    return (_id_hash(record.event_id), record.position.commit, record.position.sequence)


def _record(line: _Line) -> RecordedEvent:
    return RecordedEvent(
        line.event_id,
        line.stream_id,
        line.version,
        Position(*line.position),
        line.type,
        line.schema_version,
        line.data.encode(),
        line.metadata.encode(),
        line.recorded_at,
        line.tags,
    )


class ChunkInfo(msgspec.Struct, frozen=True):
    """A chunk as the index has it: its file's name, the positions of its first and last
    event, how many events it holds and its size in bytes."""

    name: str
    first: Position
    last: Position
    events: int
    bytes: int


class ColdStore:
    """The archive in ``directory`` (created if missing): chunks written by the archiver,
    read by :class:`~facta.archive.reading.ArchivedEvents`.

    Its calls are synchronous and short (an indexed query, or a chunk read from a cache of
    recently decoded ones); a chunk decoded afresh takes a few milliseconds.
    """

    def __init__(self, directory: str | os.PathLike[str], *, cached_chunks: int = 8) -> None:
        self.directory = Path(directory)
        (self.directory / "chunks").mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.directory / "index.sqlite", isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        indexed = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event_ids'"
        ).fetchall()
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()  # one connection, used from the loop and from threads
        self._cache: OrderedDict[str, list[RecordedEvent]] = OrderedDict()
        self._streams_in: dict[str, dict[str, list[RecordedEvent]]] = {}  # by cached chunk
        self._cached_chunks = cached_chunks
        self._decode = msgspec.json.Decoder(_Line).decode
        self._encode = msgspec.json.Encoder().encode
        if not indexed:
            self._index_event_ids()

    def _index_event_ids(self) -> None:
        """Enter the event ids of every chunk in the index (an archive written before the
        index had them; several processes may do it at once: the rows are the same)."""
        for chunk in self.chunks():
            rows = [_id_row(r) for r in self.events_of(chunk.name)]
            with self._lock, self._transaction():
                self._db.executemany("INSERT OR IGNORE INTO event_ids VALUES (?, ?, ?)", rows)

    # -- reading ------------------------------------------------------------------------

    def _query(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def last_position(self) -> Position | None:
        """The position of the last archived event (None: nothing archived)."""
        rows = self._query(
            "SELECT last_commit, last_sequence FROM chunks"
            " ORDER BY last_commit DESC, last_sequence DESC LIMIT 1"
        )
        return Position(*rows[0]) if rows else None  # type: ignore[arg-type]

    def chunks(self, after: Position | None = None) -> list[ChunkInfo]:
        """The chunks holding events after ``after`` (all with None), by first position."""
        sql = "SELECT * FROM chunks"
        parameters: tuple[int, ...] = ()
        if after is not None:
            sql += " WHERE (last_commit, last_sequence) > (?, ?)"
            parameters = (after.commit, after.sequence)
        rows = self._query(sql + " ORDER BY first_commit, first_sequence", parameters)
        return [
            ChunkInfo(
                row[0],  # type: ignore[arg-type]
                Position(row[1], row[2]),  # type: ignore[arg-type]
                Position(row[3], row[4]),  # type: ignore[arg-type]
                row[5],  # type: ignore[arg-type]
                row[6],  # type: ignore[arg-type]
            )
            for row in rows
        ]

    def holds(self, stream_id: str) -> bool:
        """Whether any version of ``stream_id`` is archived."""
        return bool(self._query("SELECT 1 FROM streams WHERE stream_id = ? LIMIT 1", (stream_id,)))

    def may_hold_event(self, event_id: str) -> bool:
        """Whether an event with this id may be archived (an indexed query: False, the
        commonest answer, for certain; True may be another id with the same hash)."""
        return bool(
            self._query("SELECT 1 FROM event_ids WHERE id_hash = ? LIMIT 1", (_id_hash(event_id),))
        )

    def find_event(self, event_id: str) -> RecordedEvent | None:
        """The archived event with this id, or None (decodes the chunk that holds it)."""
        positions = self._query(
            "SELECT commit_position, sequence FROM event_ids WHERE id_hash = ?",
            (_id_hash(event_id),),
        )
        for commit, sequence in positions:
            chunks = self._query(
                "SELECT name FROM chunks WHERE (first_commit, first_sequence) <= (?, ?)"
                " AND (last_commit, last_sequence) >= (?, ?)",
                (commit, sequence, commit, sequence),
            )
            for (chunk,) in chunks:
                for record in self.events_of(str(chunk)):
                    if record.event_id == event_id:
                        return record
        return None

    def read_stream(
        self, stream_id: str, from_version: int, to_version: int
    ) -> list[RecordedEvent]:
        """The archived events of ``stream_id`` with versions in the range, in order."""
        rows = self._query(
            "SELECT chunk FROM streams WHERE stream_id = ? AND last_version >= ?"
            " AND first_version <= ? ORDER BY first_version",
            (stream_id, from_version, to_version),
        )
        found: list[RecordedEvent] = []
        for (chunk,) in rows:
            events = self.events_of(str(chunk))
            with self._lock:
                by_stream = self._streams_in.get(str(chunk))
            # Evicted by another thread meanwhile: filter the list it was decoded to.
            mine = (
                by_stream.get(stream_id, ())
                if by_stream is not None
                else [r for r in events if r.stream_id == stream_id]
            )
            found.extend(r for r in mine if from_version <= r.version <= to_version)
        found.sort(key=lambda r: r.version)
        return found

    def events_of(self, chunk: str) -> list[RecordedEvent]:
        """Every event of one chunk, in log order (decoded once, then from the cache)."""
        with self._lock:
            cached = self._cache.get(chunk)
            if cached is not None:
                self._cache.move_to_end(chunk)
                return cached
        with gzip.open(self.directory / "chunks" / chunk, "rb") as file:
            decode = self._decode
            events = [_record(decode(line)) for line in file]
        by_stream: dict[str, list[RecordedEvent]] = {}
        for record in events:
            by_stream.setdefault(record.stream_id, []).append(record)
        with self._lock:
            self._cache[chunk] = events
            self._streams_in[chunk] = by_stream
            while len(self._cache) > self._cached_chunks:
                evicted, _ = self._cache.popitem(last=False)
                self._streams_in.pop(evicted, None)
        return events

    def streams_containing(self, needles: Sequence[bytes]) -> list[str]:
        """The archived streams with an event whose data holds one of ``needles`` (a scan of
        every chunk: for forgetting a data subject, which is rare)."""
        found: set[str] = set()
        for chunk in self.chunks():
            found.update(
                r.stream_id for r in self.events_of(chunk.name) if any(n in r.data for n in needles)
            )
        return sorted(found)

    def totals(self) -> tuple[int, int, int, int]:
        """Chunks, events, streams and bytes in the archive."""
        ((chunks, events, size),) = self._query(
            "SELECT count(*), coalesce(sum(events), 0), coalesce(sum(bytes), 0) FROM chunks"
        )
        ((streams,),) = self._query("SELECT count(DISTINCT stream_id) FROM streams")
        return int(chunks), int(events), int(streams), int(size)  # type: ignore[call-overload]

    # -- writing (the archiver) ---------------------------------------------------------

    def write_chunk(self, records: Sequence[RecordedEvent]) -> ChunkInfo:
        """Write ``records`` (in log order) as one chunk and enter it in the index."""
        written = self._write_file(records)
        with self._lock, self._transaction():
            self._enter(*written)
        return written[0]

    def _write_file(
        self, records: Sequence[RecordedEvent]
    ) -> tuple[ChunkInfo, dict[str, list[int]], list[tuple[int, int, int]]]:
        first, last = records[0].position, records[-1].position
        # A fresh name each time: a chunk written again (an erasure) never replaces a file
        # that another process may be reading.
        name = f"{first.commit}-{first.sequence}-{last.sequence}-{uuid.uuid4().hex[:8]}.jsonl.gz"
        path = self.directory / "chunks" / name
        temporary = path.with_suffix(".tmp")
        encode = self._encode
        with gzip.open(temporary, "wb", compresslevel=6) as file:
            file.writelines(encode(_line(r)) + b"\n" for r in records)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
        ranges: dict[str, list[int]] = {}
        for r in records:
            span = ranges.setdefault(r.stream_id, [r.version, r.version])
            span[0], span[1] = min(span[0], r.version), max(span[1], r.version)
        info = ChunkInfo(name, first, last, len(records), path.stat().st_size)
        return info, ranges, [_id_row(r) for r in records]

    def _enter(
        self, chunk: ChunkInfo, ranges: dict[str, list[int]], ids: list[tuple[int, int, int]]
    ) -> None:
        first, last = chunk.first, chunk.last
        row = [chunk.name, first.commit, first.sequence, last.commit, last.sequence]
        row += [chunk.events, chunk.bytes]
        self._db.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        self._db.executemany(
            "INSERT INTO streams VALUES (?, ?, ?, ?)",
            [(stream, chunk.name, span[0], span[1]) for stream, span in ranges.items()],
        )
        self._db.executemany("INSERT OR IGNORE INTO event_ids VALUES (?, ?, ?)", ids)

    def erase(self, stream_id: str) -> int:
        """Remove every archived event of ``stream_id`` (a hard delete): each chunk that
        holds some is written again without them, and the old file deleted. Returns how
        many were removed."""
        rows = self._query("SELECT DISTINCT chunk FROM streams WHERE stream_id = ?", (stream_id,))
        removed = 0
        for (chunk,) in rows:
            name = str(chunk)
            events = self.events_of(name)
            kept = [r for r in events if r.stream_id != stream_id]
            gone = [_id_row(r) for r in events if r.stream_id == stream_id]
            removed += len(gone)
            written = self._write_file(kept) if kept else None
            with self._lock, self._transaction():
                self._db.execute("DELETE FROM chunks WHERE name = ?", (name,))
                self._db.execute("DELETE FROM streams WHERE chunk = ?", (name,))
                self._db.executemany(
                    "DELETE FROM event_ids"
                    " WHERE id_hash = ? AND commit_position = ? AND sequence = ?",
                    gone,
                )
                if written is not None:
                    self._enter(*written)
            with self._lock:
                self._cache.pop(name, None)
                self._streams_in.pop(name, None)
            (self.directory / "chunks" / name).unlink(missing_ok=True)
        return removed

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the index."""
        with self._lock:
            self._db.close()
