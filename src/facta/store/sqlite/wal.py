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
documents (https://www.sqlite.org/walformat.html): after each commit the writer reads two
numbers from it (one ``pread``: ~0.3 µs warm, ~3.5 µs between two commits' fsyncs), and
only wakes the thread when a checkpoint is due. (Waking it on every commit, to let it look,
cost ~80 µs of CPU per append: a fifth of the sequential command rate.) Where the header
cannot be read, it does nothing and SQLite checkpoints as it always did.

The ``-shm`` file needs care. SQLite marks it in use with a POSIX lock, and closing *any*
descriptor of a file drops every POSIX lock the process holds on it. Had we opened the file,
read it and closed it, the next process to open the database would have found it unused,
truncated it and rebuilt it under our connections (a bus error in the test suite, and a
corrupt index in the worst case). So :class:`WalIndex` keeps its descriptor open until no
other descriptor of the process is open on the file, and reads with ``pread`` rather than a
memory map, which a truncation would turn into a bus error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import struct
import threading

log = logging.getLogger("facta.store.sqlite")

_WAL_INDEX_VERSION = 3007000
_HEADER = struct.Struct("=I8xB")  # iVersion, then isInit at offset 12 (native byte order)
_FRAMES = struct.Struct("=I")  # mxFrame at offset 16: frames in the log since it restarted
_COPIED = struct.Struct("=I")  # nBackfill at offset 96: frames already copied back


_HEAD = 100  # bytes of the wal-index header read here


def wal_frames(head: bytes) -> tuple[int, int] | None:
    """(frames in the log, frames of them copied back) from the start of a ``-shm`` file,
    or None when it does not hold a wal-index this module knows."""
    if len(head) < _HEAD:
        return None
    version, initialised = _HEADER.unpack_from(head, 0)
    if version != _WAL_INDEX_VERSION or initialised != 1:
        return None
    return _FRAMES.unpack_from(head, 16)[0], _COPIED.unpack_from(head, 96)[0]


class WalIndex:
    """The header of the wal-index of the SQLite file at a path, read without disturbing
    SQLite's locks on it (see the module's docstring)."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor

    @classmethod
    def open(cls, path: str) -> WalIndex | None:
        """None when the file has no wal-index (not in WAL mode, or not opened yet), or the
        system has no ``pread`` (Windows, where SQLite then checkpoints by itself)."""
        if not hasattr(os, "pread"):
            return None
        try:
            return cls(os.open(f"{path}-shm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
        except OSError:
            return None

    def read(self) -> tuple[int, int] | None:
        """(frames in the log, frames of them copied back), or None (see ``wal_frames``)."""
        try:
            return wal_frames(os.pread(self._descriptor, _HEAD, 0))
        except OSError:  # closed on another thread just now
            return None

    def close(self) -> None:
        _release(self._descriptor)
        self._descriptor = -1


_waiting: list[int] = []  # descriptors that could not be closed yet without dropping locks
_waiting_lock = threading.Lock()


def _release(descriptor: int) -> None:
    """Close ``descriptor``, or, while another descriptor of this process is open on its file
    (SQLite's, holding locks that the close would drop), keep it until a later release finds
    it alone."""
    with _waiting_lock:
        _waiting.append(descriptor)
        for waiting in list(_waiting):
            if not _shared(waiting):
                os.close(waiting)
                _waiting.remove(waiting)


def _shared(descriptor: int) -> bool:
    """Whether another descriptor of this process is open on ``descriptor``'s file; True
    where the system cannot tell (no ``/proc``), so the descriptor is never closed there."""
    try:
        mine = os.fstat(descriptor)
        others = os.listdir("/proc/self/fd")
    except OSError:
        return True
    for name in others:
        if int(name) in _waiting:  # itself, or another one let go and waiting like it
            continue
        try:
            other = os.stat(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile, or the listing's own descriptor
            continue
        if (other.st_dev, other.st_ino) == (mine.st_dev, mine.st_ino):
            return True
    return False


class WalCheckpointer:
    """Checkpoints the SQLite file at ``path`` ahead of its writers: ``nudge`` after each
    commit (reads the log's length; the thread starts when the first checkpoint is
    due), ``close`` to stop. ``limit`` is the file's ``wal_autocheckpoint``."""

    def __init__(self, path: str, *, limit: int = 1000, margin: int = 64) -> None:
        self.path = path
        self.margin = margin
        self.due = max(1, limit - margin)  # frames not yet copied back that call for a copy
        self.checkpoints = 0  # passive checkpoints this thread has run
        self._enabled = limit > 0
        self._index: WalIndex | None = None
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """A writer committed: wake the thread if the log has grown near the limit."""
        if not self._enabled or self._closing:
            return
        if self._index is None:
            self._index = WalIndex.open(self.path)
            if self._index is None:
                self._enabled = False  # not a WAL file here: SQLite checkpoints by itself
                return
        frames = self._index.read()
        if frames is None or frames[0] - frames[1] < self.due:
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="facta-sqlite-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def close(self) -> None:
        """Stop the thread, waiting for a checkpoint under way to finish. Call it after the
        store's own connections are closed, so that the wal-index can be let go at once."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self._index is not None:
            self._index.close()
            self._index = None

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        with contextlib.closing(connection):
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                frames = self._index.read() if self._index is not None else None
                if frames is None or frames[0] - frames[1] < self.due:
                    continue  # a nudge from before the last copy
                try:
                    # Passive: copies what no reader still needs, waits for nobody.
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the writer's own checkpoint still runs
                    log.debug("background checkpoint of %s failed: %s", self.path, exc)
                else:
                    self.checkpoints += 1
