"""Internal. Copies SQLite's write-ahead log back into the database file off the append path.

SQLite copies the log back (a checkpoint) in whichever connection commits the frame that
takes the log to ``wal_autocheckpoint`` pages (1000): for the store, that is the append
writer, and every append queued behind it waits until the copy is done. The copy writes each
page the last thousand frames changed and fsyncs the database file, and the longer the log
the more of those pages lie scattered over the file (each stream's end in the stream index,
ids from idempotency keys all over the event-id index), each one a separate write for the
disk to make. In the soak (issue 9), a write that ran the checkpoint took about 4 ms in the
first minute and about 8 ms from the fourth on, and the tail latency of commands grew with it.

The checkpointer makes that copy first, on a thread and a connection of its own, once the log
is ``margin`` frames short of the limit; appends carry on meanwhile (a passive checkpoint
takes no lock they need). When the writer's own checkpoint comes due it only has the last
frames to copy (about 3 ms in the soak, early or late), and it still restarts the log from
its beginning, as before, so the log stays as short as it was.

It learns the log's length from the wal-index (the ``-shm`` file), whose header SQLite
documents (https://www.sqlite.org/walformat.html). Where that cannot be read, it does
nothing and SQLite checkpoints as it always did.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import struct
import threading
from typing import BinaryIO

log = logging.getLogger("facta.store.sqlite")

_WAL_INDEX_VERSION = 3007000
_HEADER = struct.Struct("=I8xB")  # iVersion, then isInit at offset 12 (native byte order)
_FRAMES = struct.Struct("=I")  # mxFrame at offset 16: frames in the log since it restarted
_COPIED = struct.Struct("=I")  # nBackfill at offset 96: frames already copied back


def wal_frames(index: BinaryIO) -> tuple[int, int] | None:
    """(frames in the log, frames of them copied back) from an open ``-shm`` file, or None
    when it does not hold a wal-index this module knows."""
    index.seek(0)
    head = index.read(100)
    if len(head) < 100:
        return None
    version, initialised = _HEADER.unpack_from(head, 0)
    if version != _WAL_INDEX_VERSION or initialised != 1:
        return None
    return _FRAMES.unpack_from(head, 16)[0], _COPIED.unpack_from(head, 96)[0]


class WalCheckpointer:
    """Checkpoints the SQLite file at ``path`` ahead of its writers: ``nudge`` after each
    commit (cheap; the thread starts on the first), ``close`` to stop."""

    def __init__(self, path: str, *, margin: int = 64) -> None:
        self.path = path
        self.margin = margin
        self.checkpoints = 0  # passive checkpoints this thread has run
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """A writer committed: check the log's length (on the checkpointer's thread)."""
        if self._thread is None:
            if self._closing:
                return
            self._thread = threading.Thread(
                target=self._run, name="facta-sqlite-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def close(self) -> None:
        """Stop the thread, waiting for a checkpoint under way to finish."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            index = open(f"{self.path}-shm", "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError:
            return  # not in WAL mode, or not a file: SQLite checkpoints by itself
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        with index, contextlib.closing(connection):
            limit = int(connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            if limit <= 0:
                return
            due = max(1, limit - self.margin)
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                frames = wal_frames(index)
                if frames is None:
                    return
                if frames[0] - frames[1] < due:
                    continue
                try:
                    # Passive: copies what no reader still needs, waits for nobody.
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the writer's own checkpoint still runs
                    log.debug("background checkpoint of %s failed: %s", self.path, exc)
                else:
                    self.checkpoints += 1
