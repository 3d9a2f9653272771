"""The synchronous engine: an async engine on a private event loop, and ``open_store``."""

from __future__ import annotations

import atexit
import concurrent.futures.thread
import contextlib
import itertools
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

from facta.store import open_store as _open_store
from facta.store.base import (
    ANY,
    START,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    Position,
    RecordedEvent,
)
from facta.store.engine import Engine as AsyncEngine
from facta.sync import _loop
from facta.sync._loop import Loop

T = TypeVar("T")

log = logging.getLogger("facta.sync")

_numbers = itertools.count(1)
_open: weakref.WeakSet[Engine] = weakref.WeakSet()


def _close_open_engines() -> None:
    for engine in list(_open):
        engine.close()


# Engines left open close when the interpreter exits, before concurrent.futures shuts its
# thread pools down (the SQLite engine writes through one, so a close after that fails):
# threading's exit hooks run before atexit's, the last registered first, and the pools'
# hook is registered on importing concurrent.futures.thread, above. A private hook of
# threading's, so only where it exists; elsewhere atexit (a SQLite close then logs errors).
(getattr(threading, "_register_atexit", None) or atexit.register)(_close_open_engines)
assert concurrent.futures.thread  # imported for the order above, not used here


class Engine:
    """One database's storage, for synchronous code: the async engine ``open_store`` gives,
    run on a private event loop (in the calling thread when nothing else is on it, else in
    a thread of its own: see facta.sync._loop).

    Thread-safe: any number of threads may call it (and the applications, read stores and
    runners made on it) at once; their calls run concurrently on its loop. Close it when done
    (or use it as a context manager): that stops the runners, closes the applications made
    on it, closes the async engine and ends its thread (one still open when the interpreter
    exits is closed then). A call after that raises EngineClosed. Calls made from the
    engine's own thread (an async handler or hook it runs) raise RuntimeError: there, await
    the async API.
    """

    def __init__(self, engine: AsyncEngine, loop: Loop) -> None:
        """Wrap ``engine``, which lives on ``loop``: use :func:`open_store` or :meth:`open`."""
        self.engine = engine
        """The async engine: touch it only on this engine's loop, through :meth:`run`."""
        self._loop = loop
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._closed = False
        _open.add(self)

    @classmethod
    def open(cls, opener: Callable[[], Awaitable[AsyncEngine]]) -> Engine:
        """An engine from ``opener``, an async callable that opens one (a registered engine
        with options ``open_store`` does not take, a test's scratch schema), called on the new
        engine's loop. Raises what ``opener`` raises (the thread is ended then)."""
        loop = Loop(f"facta-engine-{next(_numbers)}")

        async def opened() -> AsyncEngine:
            return await opener()

        try:
            engine = loop.run(opened())
        except BaseException:
            loop.stop()
            raise
        # Its calls stepped outside a task only on an engine whose calls do not wait on I/O
        # (drivers such as asyncpg enter asyncio.timeout() before their first wait).
        loop.steps_first = _loop.STEPS_FIRST and not engine.waits_on_io
        return cls(engine, loop)

    @property
    def url(self) -> str:
        """The URL the engine was opened from."""
        return self.engine.url

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on this engine's loop and return its result: the way to any async
        API of facta on this engine's objects (``engine.run(engine.engine.read_all())``).

        Raises what the coroutine raises; EngineClosed once the engine is closed;
        RuntimeError from the engine's own thread.
        """
        return self._loop.run(coroutine)

    def add_cleanup(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Have :meth:`close` await ``cleanup()`` on the loop before it closes the async
        engine (the last added first). An error it raises is logged and does not stop the
        others."""
        self._cleanups.append(cleanup)

    def close(self) -> None:
        """Refuse new calls, let running ones finish, run the cleanups (runners, inline
        projections), close the async engine and end the thread. Idempotent; raises
        RuntimeError from the engine's own thread."""
        if self._closed:
            return
        self._closed = True
        self._loop.refuse()
        if self._loop.alive:
            with contextlib.suppress(Exception):  # a failed close still ends the thread
                self._loop.run(self._shutdown(), closing=True)
        self._loop.stop()

    async def _shutdown(self) -> None:
        await self._loop.settle()
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                await cleanup()
            except Exception:  # the others and the engine must still close
                log.exception("closing %r: a cleanup failed", self)
        await self.engine.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<facta.sync.Engine {self.engine.name}{' closed' if self._closed else ''}>"

    # -- the event store ------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Create or bring up to date the schema; the migration versions applied."""
        return self.run(self.engine.migrate())

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically (see ``EventStore.append``): raises
        WrongExpectedVersion when the stream is not at ``expected_version``."""
        return self.run(self.engine.append(stream_id, events, expected_version))

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """The stream's stored events in version order (reversed with ``backwards``)."""
        return self.run(
            self.engine.read_stream(
                stream_id,
                from_version=from_version,
                to_version=to_version,
                backwards=backwards,
                limit=limit,
            )
        )

    def read_all(
        self,
        *,
        after: Position = START,
        limit: int = 1000,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        """One page of the global log after ``after``, in order (gap-safe)."""
        return self.run(
            self.engine.read_all(after=after, limit=limit, categories=categories, types=types)
        )

    def stream_version(self, stream_id: str) -> int:
        """The stream's version (0: no events)."""
        return self.run(self.engine.stream_version(stream_id))

    def head(self) -> Position:
        """The position of the log's last event."""
        return self.run(self.engine.head())

    def find_event(self, event_id: str) -> RecordedEvent | None:
        """The stored event with ``event_id``, or None."""
        return self.run(self.engine.find_event(event_id))


def open_store(url: str, *, create: bool = True, **options: Any) -> Engine:
    """Open the engine at ``url`` for synchronous code (what :func:`facta.open_store` takes:
    ``memory://``, ``sqlite:///path.db``, ``postgresql://...``, a registered scheme).

    Starts the engine's thread; close the engine (or use it in a ``with`` block) to end it.
    Raises what :func:`facta.open_store` raises: ValueError for a URL no engine takes,
    StoreSetupError, StoreUnavailable.
    """

    async def opened() -> AsyncEngine:
        return await _open_store(url, create=create, **options)

    return Engine.open(opened)
