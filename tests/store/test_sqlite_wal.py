"""The SQLite store copies its write-ahead log back on a thread of its own (issue 9), so that
the append writer's own checkpoint only has the last frames left to copy."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from facta import NewEvent
from facta.store._sqlite_wal import wal_frames
from facta.store.sqlite import SQLiteEventStore

LIMIT = 1000  # SQLite's default wal_autocheckpoint, which the store keeps


def log_of(path: str) -> tuple[int, int]:
    """(frames in the log, frames copied back) of the SQLite file at ``path``."""
    counts = wal_frames(Path(f"{path}-shm").read_bytes()[:100])
    assert counts is not None
    return counts


def has_log(path: str) -> bool:
    return Path(f"{path}-wal").exists()


def test_the_wal_index_gives_the_log_length_and_what_was_copied(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x BLOB)")
        for _ in range(20):
            connection.execute("INSERT INTO t VALUES (randomblob(3000))")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        in_file = (Path(f"{path}-wal").stat().st_size - 32) // (24 + page_size)
        assert log_of(str(path)) == (in_file, 0)
        busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, frames, copied) == (0, in_file, in_file)
        assert log_of(str(path)) == (in_file, in_file)
    finally:
        connection.close()
    assert wal_frames(b"\x01" * 200) is None
    assert wal_frames(b"") is None


async def test_the_log_is_copied_back_before_the_writer_must_do_it(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    store = await SQLiteEventStore.open(path, synchronous="NORMAL")
    try:
        due = store._checkpointer.due
        assert due == LIMIT - store._checkpointer.margin
        n = 0
        # One event at a time, so the log stops just past the point where the checkpointer
        # steps in and short of the writer's own checkpoint.
        while True:
            await store.append(f"tick-{n % 50}", [NewEvent("Tick", b"{}")])
            n += 1
            frames, copied = log_of(path)
            if frames >= due or copied:
                break
        assert frames < LIMIT  # so the writer's own checkpoint has not come due
        for _ in range(500):  # nothing else writes: only the checkpointer can copy now
            if log_of(path) == (frames, frames):
                break
            await asyncio.sleep(0.02)
        assert log_of(path) == (frames, frames)
        assert store._checkpointer.checkpoints >= 1
        # The writer's next append finds the log copied back and starts it over.
        await store.append("tick-0", [NewEvent("Tick", b"{}")])
        assert log_of(path)[0] < frames
    finally:
        await store.close()


async def test_closing_the_store_stops_the_checkpointer_and_removes_the_log(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "store.db")
    store = await SQLiteEventStore.open(path, synchronous="NORMAL")
    await asyncio.gather(
        *(store.append(f"tick-{w}", [NewEvent("Tick", b"{}")]) for w in range(300))
    )
    await store.close()
    assert not [t for t in threading.enumerate() if t.name == "facta-sqlite-checkpoint"]
    assert not has_log(path)  # the last connection to close copied it back and removed it


async def test_commits_short_of_the_limit_wake_no_thread(tmp_path: Path) -> None:
    """The writer reads the log's length itself: the checkpointer's thread only starts once a
    copy is due, not on every commit."""
    path = str(tmp_path / "store.db")
    store = await SQLiteEventStore.open(path, synchronous="NORMAL")
    try:
        for n in range(100):
            await store.append(f"tick-{n % 10}", [NewEvent("Tick", b"{}")])
        assert 0 < log_of(path)[0] < store._checkpointer.due
        assert not [t for t in threading.enumerate() if t.name == "facta-sqlite-checkpoint"]
    finally:
        await store.close()
