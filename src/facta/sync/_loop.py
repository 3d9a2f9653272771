"""A private asyncio event loop in a thread of its own, and the way other threads run
coroutines on it and wait for their results.

Every object of one synchronous engine (its async engine, applications, runners) lives on
this loop and is only ever touched from its thread, so the async code below keeps its
single-threaded assumptions however many threads call in.
"""

from __future__ import annotations

import _thread
import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class EngineClosed(RuntimeError):
    """The synchronous engine was closed: before the call, or while it was running (then
    the call was cancelled, and whatever it did so far stands or is rolled back as the
    async call's own cancellation leaves it)."""


class _Call(Generic[T]):
    """One coroutine handed to the loop: started there, awaited by the calling thread on a
    bare lock (the cheapest signal between threads: no Condition, no Future chaining)."""

    __slots__ = ("context", "coroutine", "done", "error", "finished", "task", "value")

    def __init__(self, coroutine: Coroutine[Any, Any, T]) -> None:
        self.coroutine = coroutine
        # The caller's context variables (its OpenTelemetry span, say) flow into the call,
        # as they would into an awaited coroutine.
        self.context = contextvars.copy_context()
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.task: asyncio.Task[None] | None = None
        self.value: T | None = None
        self.error: BaseException | None = None
        self.finished = False

    def start(self, loop: asyncio.AbstractEventLoop, running: set[asyncio.Task[None]]) -> None:
        task = loop.create_task(self._run(), context=self.context)
        self.task = task
        running.add(task)
        task.add_done_callback(running.discard)
        task.add_done_callback(self._ended)

    async def _run(self) -> None:
        try:
            self.value = await self.coroutine
        except BaseException as exc:  # handed to the caller, CancelledError included
            self.error = exc
        finally:
            # Released here rather than in the done callback: one loop iteration less a call.
            self.finished = True
            self.done.release()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not self.finished:  # cancelled before its first step: _run never ran
            self.coroutine.close()
            self.error, self.finished = asyncio.CancelledError(), True
            self.done.release()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class Loop:
    """An event loop running forever in a daemon thread named ``name``, until :meth:`stop`.

    :meth:`run` may be called from any number of threads at once; the coroutines run
    concurrently on the loop. A daemon thread, so that a program that forgets to stop it
    still exits (dropping its connections without a goodbye).
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()  # orders new calls against stopping
        self._accepting = True
        self._stopped = False
        self._running: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            # Stopped: whatever is left (calls that raced the stop, tasks the closed
            # objects did not end) is cancelled and run to its end, so no caller waits on.
            leftover = asyncio.all_tasks(self._loop)
            for task in leftover:
                task.cancel()
            if leftover:
                self._loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            self._loop.close()

    @property
    def in_loop_thread(self) -> bool:
        """Whether the caller is the loop's own thread (a handler or callback of its work)."""
        return threading.get_ident() == self._thread.ident

    def run(self, coroutine: Coroutine[Any, Any, T], *, closing: bool = False) -> T:
        """Run ``coroutine`` on the loop and return its result (or raise its error).

        Raises EngineClosed after :meth:`refuse` (unless ``closing``: the shutdown's own
        work) and when the call is cancelled by the loop stopping; RuntimeError from the
        loop's own thread, where waiting would deadlock it. An interrupt of the waiting
        thread (KeyboardInterrupt) cancels the call on the loop, then propagates.
        """
        if self.in_loop_thread:
            coroutine.close()
            raise RuntimeError(
                "a synchronous facta call from the engine's own thread (an async handler,"
                " hook or callback) would wait for itself: await the async API there"
            )
        call = _Call(coroutine)
        with self._lock:
            if self._stopped or not (self._accepting or closing):
                coroutine.close()
                raise EngineClosed("the engine is closed")
            self._loop.call_soon_threadsafe(call.start, self._loop, self._running)
        try:
            call.done.acquire()
        except BaseException:
            self._loop.call_soon_threadsafe(call.cancel)
            raise
        if call.error is not None:
            if isinstance(call.error, asyncio.CancelledError) and not self._accepting:
                raise EngineClosed("the engine was closed while the call ran") from None
            raise call.error
        return call.value  # type: ignore[return-value]  # set when no error was

    def refuse(self) -> None:
        """Refuse new calls from now on (EngineClosed); those already running go on."""
        with self._lock:
            self._accepting = False

    async def settle(self) -> None:
        """Wait for every call already running, but the one awaiting this, to end."""
        current = asyncio.current_task()
        others = [task for task in self._running if task is not current]
        if others:
            await asyncio.gather(*others, return_exceptions=True)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the loop (cancelling what still runs on it) and join its thread.

        Idempotent. Raises RuntimeError from the loop's own thread, TimeoutError if the
        thread has not ended after ``timeout`` seconds.
        """
        if self.in_loop_thread:
            raise RuntimeError("a synchronous engine cannot be closed from its own thread")
        with self._lock:
            self._accepting = False
            if not self._stopped:
                self._stopped = True
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the engine's thread did not end within {timeout} s")

    @property
    def alive(self) -> bool:
        """Whether the loop's thread still runs."""
        return self._thread.is_alive()
