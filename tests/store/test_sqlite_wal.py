"""The SQLite store copies its write-ahead log back on a thread of its own (issue 9), so that
the append writer's own checkpoint only has the last frames left to copy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from facta import NewEvent
from facta.store.sqlite import SQLiteEventStore
from facta.store.sqlite.wal import WalIndex, wal_frames

LIMIT = 1000  # SQLite's default wal_autocheckpoint, which the store keeps


def log_of(path: str) -> tuple[int, int]:
    """(frames in the log, frames copied back) of the SQLite file at ``path``."""
    index = WalIndex.open(path)
    assert index is not None
    try:
        counts = index.read()
    finally:
        index.close()
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


# SQLite's "dead man switch": a read lock on byte 128 of the -shm file says that some process
# has the file open, and the first process to find it unlocked truncates the file and builds
# the index again (src/os_unix.c, unixLockSharedMemory).
_IN_USE_PROBE = """
import fcntl, os, struct, sys
descriptor = os.open(sys.argv[1] + "-shm", os.O_RDONLY)
probe = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 128, 1, 0)
kind = struct.unpack("hhqqi", fcntl.fcntl(descriptor, fcntl.F_GETLK, probe))[0]
print("in use" if kind != fcntl.F_UNLCK else "free")
"""


_COUNT = """
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM events").fetchone()[0])
"""


def in_another_process(script: str, path: str) -> str:
    run = [sys.executable, "-c", script, path]
    return subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()


async def test_reading_the_log_length_keeps_sqlites_claim_on_the_index(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops all the POSIX locks the process holds on it.
    When the checkpointer opened the -shm file, read it and closed it, SQLite's claim went
    with it: the next process to open the database truncated the index under the store (a
    bus error in CI). The index must stay claimed while the store is open, through the
    checkpoints and after a helper's own WalIndex is closed."""
    path = str(tmp_path / "store.db")
    store = await SQLiteEventStore.open(path, synchronous="NORMAL")
    try:
        appended = 0
        while not store._checkpointer.checkpoints:  # on past a background checkpoint
            assert appended < 50_000, "no background checkpoint"
            await store.append(f"tick-{appended % 20}", [NewEvent("Tick", b"{}")])
            appended += 1
        log_of(path)  # opens and closes an index of its own, alongside the store's
        assert in_another_process(_IN_USE_PROBE, path) == "in use"
        # What truncated the index under the store: another process opening the database.
        assert int(in_another_process(_COUNT, path)) == appended
        assert in_another_process(_IN_USE_PROBE, path) == "in use"
        await store.append("tick-0", [NewEvent("Tick", b"{}")])
        index = os.stat(f"{path}-shm")
        held = _open_on(index)
        assert held  # SQLite's and the checkpointer's
    finally:
        await store.close()
    assert not set(held) & set(_open_on(index))  # closing the store let them all go


def _open_on(file: os.stat_result) -> list[str]:
    """This process's descriptors open on ``file``."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            st = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (file.st_dev, file.st_ino):
            found.append(name)
    return found


# A store under write load in a process of its own (a bus error must not take the test run
# down with it), while other processes open the same database one after another.
_BUSY_STORE = """
import asyncio, sys, time
from facta import NewEvent
from facta.store.sqlite import SQLiteEventStore

async def main(path, seconds):
    store = await SQLiteEventStore.open(path, synchronous="NORMAL")
    stop = time.monotonic() + seconds
    written = 0
    async def writer(w):
        nonlocal written
        while time.monotonic() < stop:
            await store.append(f"tick-{w}-{written % 50}", [NewEvent("Tick", b"{}")])
            written += 1
    async def visitors():
        visits = 0
        while time.monotonic() < stop:
            visit = await asyncio.create_subprocess_exec(
                sys.executable, "-c", sys.argv[3], path, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await visit.communicate()
            assert out.split()[-1] == b"ok", out
            visits += 1
        return visits
    *_, visits = await asyncio.gather(*(writer(w) for w in range(8)), visitors())
    await store.close()
    print(written, visits)

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""

_VISIT = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
print(connection.execute("SELECT count(*) FROM events").fetchone()[0])
print(connection.execute("PRAGMA quick_check").fetchone()[0])
"""


async def test_a_busy_store_survives_other_processes_opening_its_file(tmp_path: Path) -> None:
    """On the old checkpointer this process died of a bus error within a few seconds,
    every time: a visitor truncated the wal-index while the store's commit used it."""
    path = str(tmp_path / "busy.db")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _BUSY_STORE, path, "3", _VISIT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    assert child.returncode == 0, f"the store's process ended with {child.returncode}"
    written, visits = map(int, out.split())
    assert visits >= 5
    assert written > 0
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone()[0] == written
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
