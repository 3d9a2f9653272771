"""A private asyncio event loop for synchronous callers, run in whichever thread costs least.

Every object of one synchronous engine (its async engine, applications, runners) lives on
this loop, and only one thread runs the loop at a time, so the async code below keeps its
single-threaded assumptions however many threads call in.

Which thread runs it:

- A call made while nothing else is on the loop runs the loop in the calling thread, until
  its coroutine is done (``run_until_complete``). Handing a call to another thread and back
  costs two thread wake-ups: 100-120 µs here, more than a whole command on the memory store
  and a third of one on SQLite. A single-threaded caller (a script, a Django worker thread)
  never pays it.
- On an engine whose calls do not wait on I/O (the memory engine: ``waits_on_io``), such a
  call's first step (up to its first wait, most often to its end) runs without a loop pass
  at all, as the loop itself would run it: in a copy of the caller's context, with the loop
  set as the thread's running loop. Only a call that then waits becomes a task, and the
  loop runs until it ends. A loop pass with a task costs 8-14 µs here, more than a whole
  command on the memory store (13-19 µs). Not on the other engines: in that first step
  ``asyncio.current_task()`` is None, and their drivers enter ``asyncio.timeout()`` (which
  needs a task) before their first wait; their calls wait on I/O anyway, beside which a
  loop pass is small. This uses ``asyncio.events._set_running_loop`` (exported for
  event-loop implementations, but underscored), so it is kept to the CPython versions it
  was tested on (STEPS_FIRST); on others every call is a task from the start.
- A task a call leaves behind (a snapshot being saved) gets one more pass of the loop in
  the calling thread, in which it most often ends.
- As soon as there is other work (a call from a second thread while the first runs the
  loop, a runner in the background, a task left behind that did not end in that pass), the
  loop's own thread runs the loop, calls are handed to it, and it gives the loop back once
  nothing is left on it.
"""

from __future__ import annotations

import _thread
import asyncio
import contextvars
import sys
import threading
import weakref
from asyncio import events
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

STEPS_FIRST = sys.implementation.name == "cpython" and (3, 11) <= sys.version_info[:2] <= (3, 13)
"""Whether a caller's call runs its first step itself, outside a task (see the module's
docstring): on the CPython versions that was tested on (3.11.7, 3.12.1, 3.13.0)."""


class EngineClosed(RuntimeError):
    """The synchronous engine was closed: before the call, or while it was running (then
    the call was cancelled, and whatever it did so far stands or is rolled back as the
    async call's own cancellation leaves it)."""


class _Call(Generic[T]):
    """One coroutine handed to the loop's thread: started there, awaited by the calling
    thread on a bare lock (the cheapest signal between threads: no Condition, no Future
    chaining)."""

    __slots__ = ("context", "coroutine", "done", "error", "finished", "owner", "task", "value")

    def __init__(self, coroutine: Coroutine[Any, Any, T], owner: Loop) -> None:
        self.coroutine = coroutine
        self.owner = owner
        # The caller's context variables (its OpenTelemetry span, say) flow into the call,
        # as they would into an awaited coroutine.
        self.context = contextvars.copy_context()
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.task: asyncio.Task[None] | None = None
        self.value: T | None = None
        self.error: BaseException | None = None
        self.finished = False

    def start(self) -> None:
        task = self.owner.loop.create_task(self._run(), context=self.context)
        self.task = task
        self.owner.track(task)
        task.add_done_callback(self._ended)

    async def _run(self) -> None:
        try:
            self.value = await self.coroutine
        except BaseException as exc:  # handed to the caller, CancelledError included
            self.error = exc
        finally:
            self._finish()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not self.finished:  # cancelled before its first step: _run never ran
            self.coroutine.close()
            self.error = asyncio.CancelledError()
            self._finish()

    def _finish(self) -> None:
        self.finished = True
        self.done.release()
        self.owner.handed_call_ended()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class Loop:
    """An event loop for synchronous callers, with a daemon thread named ``name`` that runs
    it whenever a calling thread does not (see the module's docstring), until :meth:`stop`.

    :meth:`run` may be called from any number of threads at once; the coroutines run
    concurrently on the loop. A daemon thread, so that a program that forgets to stop it
    still exits (dropping its connections without a goodbye).
    """

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.steps_first = False
        """Whether a caller's call runs its first step itself, outside a task (set by the
        engine once it is open, from STEPS_FIRST and the engine's ``waits_on_io``)."""
        self._lock = threading.Lock()  # guards everything below
        self._wake = threading.Condition(self._lock)  # the thread waits here for work
        self._driver: int | None = None  # the thread running the loop now, if any
        self._handed = 0  # calls handed to the loop's thread, not yet ended
        self._accepting = True
        self._stopped = False
        self._ending = False  # the loop's thread is cancelling what is left, to close
        # Calls (for settle), and every task made on the loop until it ends (whether any is
        # pending is asked twice a call: asyncio.all_tasks, all loops' tasks copied, cost
        # 6 µs a time; a set of our own, kept by the loop's task factory, costs 1).
        self._running: set[asyncio.Future[Any]] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._watched: weakref.WeakSet[asyncio.Future[Any]] = weakref.WeakSet()
        self.loop.set_task_factory(self._new_task)
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._thread_id = self._thread.ident

    # -- calls ------------------------------------------------------------------------------

    def run(self, coroutine: Coroutine[Any, Any, T], *, closing: bool = False) -> T:
        """Run ``coroutine`` on the loop and return its result (or raise its error).

        Raises EngineClosed after :meth:`refuse` (unless ``closing``: the shutdown's own
        work) and when the call is cancelled by the loop stopping; RuntimeError from a
        coroutine running on this loop, where waiting would deadlock it. An interrupt of the
        waiting thread (KeyboardInterrupt) cancels the call on the loop, then propagates.
        """
        # The common call (nothing else on the loop) is a straight line through this one
        # frame: on the memory engine each call and check here is a visible share of a
        # whole command.
        running = _running_loop()
        me = _thread.get_ident()
        if running is self.loop or me == self._thread_id:
            coroutine.close()
            raise RuntimeError(
                "a synchronous facta call from the engine's own thread (an async handler,"
                " hook or callback) would wait for itself: await the async API there"
            )
        lock = self._lock
        lock.acquire()  # not `with`: half its cost here, where every call passes
        try:
            if self._stopped or not (self._accepting or closing):
                coroutine.close()
                raise EngineClosed("the engine is closed")
            # A thread running another event loop cannot run this one: it hands over.
            handed = (
                running is not None
                or self._driver is not None
                or self._handed > 0
                or (bool(self._tasks) and bool(self._pending(None)))  # _needs_thread, inlined
            )
            if handed:
                call = _Call(coroutine, self)
                self._handed += 1
                self.loop.call_soon_threadsafe(call.start)
                if self._driver is None:
                    self._wake.notify()
            else:
                self._driver = me
        finally:
            lock.release()
        if handed:
            return self._await(call)
        try:
            context = contextvars.copy_context()
            if self.steps_first:
                loop = self.loop
                # As the loop would run a task's step: the loop set as the thread's running
                # loop, in a copy of the caller's context.
                events._set_running_loop(loop)
                try:
                    waiting_on = context.run(coroutine.send, None)
                except StopIteration as done:
                    ended, value = True, done.value
                else:
                    ended, value = False, None
                finally:
                    events._set_running_loop(None)
                if ended:
                    if self._tasks:
                        # Work it left behind (a snapshot being saved): a pass of the loop
                        # here, in which that work most often ends (on the memory store,
                        # always), instead of waking the loop's thread and handing the next
                        # call to it.
                        loop.stop()
                        loop.run_forever()
                    return value  # type: ignore[no-any-return]  # the coroutine's T
                coroutine = _resumed(coroutine, waiting_on)
            return self._run_task(coroutine, context)
        except asyncio.CancelledError:
            if not self._accepting:
                raise EngineClosed("the engine was closed while the call ran") from None
            raise
        finally:
            # Tasks left behind are looked at while this thread still drives: nobody else
            # runs the loop, so nobody adds or ends one meanwhile (after the store below,
            # the loop's thread may take the loop and change the set under the iteration).
            left_behind = bool(self._tasks) and bool(self._pending(None))
            # Given back without the lock (a plain store, whole under the GIL): a thread
            # that handed a call over meanwhile did so under the lock, saw this thread
            # driving and left the wake-up to it, and it is counted in _handed, read after
            # the store; one that comes after sees no driver and wakes the thread itself.
            self._driver = None
            if self._stopped or self._handed or left_behind:
                with self._lock:
                    self._wake.notify()

    def _run_task(self, coroutine: Coroutine[Any, Any, T], context: contextvars.Context) -> T:
        """Run the loop in this thread until ``coroutine``, as a task, is done."""
        task = self.loop.create_task(coroutine, context=context)
        self.track(task)
        try:
            # One pass of the loop first (stop before run: "poll once, run what is ready"):
            # a call whose wait is already over ends in it, for half of what
            # run_until_complete's two passes cost. Otherwise, until it is done.
            self.loop.stop()
            self.loop.run_forever()
            if not task.done():
                self.loop.run_until_complete(task)
            if self._tasks and self._pending(None):
                # Work it left behind (a snapshot being saved) starts in the next pass, and
                # most often ends in it (on the memory store, always): here, instead of
                # waking the loop's thread and handing the next call to it.
                self.loop.stop()
                self.loop.run_forever()
        except BaseException:
            if not task.done():  # interrupted between steps: the loop's thread ends it
                task.cancel()
            raise
        return task.result()

    def _await(self, call: _Call[T]) -> T:
        try:
            call.done.acquire()
        except BaseException:
            self.loop.call_soon_threadsafe(call.cancel)
            raise
        if call.error is not None:
            if isinstance(call.error, asyncio.CancelledError) and not self._accepting:
                raise EngineClosed("the engine was closed while the call ran") from None
            raise call.error
        return call.value  # type: ignore[return-value]  # set when no error was

    def track(self, task: asyncio.Task[Any]) -> None:
        """Count ``task`` as a call until it ends (settle waits for it)."""
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def handed_call_ended(self) -> None:
        """On the loop, as a handed call ends: the loop's thread may give the loop back."""
        with self._lock:
            self._handed -= 1
        self._give_back_if_idle(asyncio.current_task())

    # -- the loop's own thread --------------------------------------------------------------

    def _new_task(
        self,
        loop: asyncio.AbstractEventLoop,
        coroutine: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        **options: Any,  # context=, in the versions that pass it
    ) -> asyncio.Future[Any]:
        task = asyncio.Task(coroutine, loop=loop, **options)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _pending(self, finishing: asyncio.Future[Any] | None) -> list[asyncio.Future[Any]]:
        """The loop's tasks not yet done, but ``finishing``."""
        return [t for t in self._tasks if not t.done() and t is not finishing]

    def _needs_thread(self) -> bool:
        """Whether there is work for the loop's thread (called with the lock, while no
        thread runs the loop, or from the loop itself)."""
        return self._handed > 0 or (bool(self._tasks) and bool(self._pending(None)))

    def _main(self) -> None:
        me = threading.get_ident()
        while True:
            with self._wake:
                while self._driver is not None or not (self._stopped or self._needs_thread()):
                    self._wake.wait()
                self._driver = me
                if self._stopped:
                    break  # and keep the loop: no caller runs it from now on
            self.loop.call_soon(self._give_back_if_idle, None)
            self.loop.run_forever()
            with self._lock:
                self._driver = None
        self._end()

    def _give_back_if_idle(self, finishing: asyncio.Future[Any] | None) -> None:
        """On the loop: when its own thread runs it and nothing but ``finishing`` is left
        (no handed call, no other task), stop it, so that the next caller runs it. Tasks
        still pending are watched, and this is asked again as each ends."""
        with self._lock:
            if self._driver != self._thread.ident or self._ending:
                return
            if not self._stopped:
                if self._handed:
                    return
                pending = self._pending(finishing)
                if pending:
                    for task in set(pending) - set(self._watched):
                        self._watched.add(task)
                        task.add_done_callback(self._give_back_if_idle)
                    return
        self.loop.stop()

    def _end(self) -> None:
        """Cancel whatever is left (calls that raced the stop, tasks the closed objects did
        not end) and run it to its end, so no caller waits on; then close the loop."""
        self._ending = True
        try:
            asyncio.set_event_loop(self.loop)
            leftover = asyncio.all_tasks(self.loop)
            for task in leftover:
                task.cancel()
            if leftover:
                self.loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()

    @property
    def in_loop_thread(self) -> bool:
        """Whether the caller is the loop's own thread (a handler or callback of its work)."""
        return threading.get_ident() == self._thread_id

    # -- closing ----------------------------------------------------------------------------

    def refuse(self) -> None:
        """Refuse new calls from now on (EngineClosed); those already running go on."""
        with self._lock:
            self._accepting = False

    async def settle(self) -> None:
        """Wait for every call already running, but the one awaiting this, to end."""
        current = asyncio.current_task()
        others = [task for task in self._running if task is not current and not task.done()]
        if others:
            await asyncio.gather(*others, return_exceptions=True)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the loop (cancelling what still runs on it) and join its thread.

        Idempotent. Raises RuntimeError from the loop's own thread, TimeoutError if the
        thread has not ended after ``timeout`` seconds.
        """
        if self.in_loop_thread or _running_loop() is self.loop:
            raise RuntimeError("a synchronous engine cannot be closed from its own thread")
        with self._lock:
            self._accepting = False
            if not self._stopped:
                self._stopped = True
                self._wake.notify()
                # Whoever runs the loop now cancels what runs on it; its own thread then
                # stops it (a caller running it returns as its call is cancelled).
                self.loop.call_soon_threadsafe(self._halt)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the engine's thread did not end within {timeout} s")

    def _halt(self) -> None:
        if self._ending:  # run late, by _end's own loop runs: it cancels what is left
            return
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self._give_back_if_idle(None)

    @property
    def alive(self) -> bool:
        """Whether the loop's thread still runs."""
        return self._thread.is_alive()


async def _resumed(coroutine: Coroutine[Any, Any, T], waiting_on: Any) -> T:
    """The rest of ``coroutine``, whose first step ran outside a task and is waiting on
    ``waiting_on``: as a task's own coroutine, so the task waits on it, and cancels it."""
    return await _Rest(coroutine, waiting_on)


class _Rest(Generic[T]):
    """Hands what a started coroutine waits on to the awaiting task, and the task's answers
    (a value, or an error such as its cancellation) back to the coroutine."""

    __slots__ = ("coroutine", "waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, T], waiting_on: Any) -> None:
        self.coroutine = coroutine
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine, waiting_on = self.coroutine, self.waiting_on
        while True:
            try:
                answer = yield waiting_on
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as error:
                try:
                    waiting_on = coroutine.throw(error)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
            else:
                try:
                    waiting_on = coroutine.send(answer)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]


def _running_loop_public() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # raised and caught: 0.5 µs a call, where the other costs 0.05
        return None


_running_loop = events._get_running_loop if STEPS_FIRST else _running_loop_public
"""The thread's running loop, or None."""
