"""Which thread runs a synchronous engine's loop: the caller's own while nothing else is on it
(no hand-over between threads), the engine's thread as soon as something is (background work,
a call from a second thread, a caller that runs an event loop of its own)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from facta.examples.bank.domain import Account, Deposit, OpenAccount
from facta.examples.bank.read_model import AccountsProjection
from facta.sync import Application, EngineClosed, ProjectionRunner, ReadStore, _loop, open_store
from facta.sync._loop import Loop

ACCOUNT = Account()


@pytest.fixture(autouse=True, params=[True, False], ids=["first-step-outside-a-task", "tasks"])
def steps_first(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every test on both paths: a caller's call stepped outside a task until it waits (the
    CPython versions STEPS_FIRST names), and the public-API path (a task from the start)."""
    monkeypatch.setattr(_loop, "STEPS_FIRST", request.param)
    return bool(request.param)


async def where() -> int:
    return threading.get_ident()


def test_a_lone_caller_runs_its_call_in_its_own_thread() -> None:
    with open_store("memory://") as engine:
        assert engine.run(where()) == threading.get_ident()
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(engine.run(where())))
        thread.start()
        thread.join(10)
        assert seen == [thread.ident]


def test_work_a_call_leaves_behind_goes_on_without_another_call() -> None:
    finished = threading.Event()
    ran_in: list[int] = []

    async def leave_work_behind() -> None:
        async def later() -> None:
            await asyncio.sleep(0.05)
            ran_in.append(threading.get_ident())
            finished.set()

        asyncio.get_running_loop().create_task(later())  # the loop's task set keeps it

    with open_store("memory://") as engine:
        engine.run(leave_work_behind())
        assert finished.wait(10)  # nobody called again: the engine's thread ran it
        assert ran_in != [threading.get_ident()]
        # Once it ended, the loop is the callers' again.
        for _ in range(100):
            if engine.run(where()) == threading.get_ident():
                break
        else:
            pytest.fail("the engine's thread kept the loop after its work had ended")


def test_calls_go_to_the_engines_thread_while_a_runner_works_and_come_back_after(
    tmp_path: Path,
) -> None:
    with open_store(f"sqlite:///{tmp_path / 'r.db'}") as engine:
        app = Application(engine)
        reads = ReadStore(engine)
        runner = ProjectionRunner(engine, [AccountsProjection()], app=app)
        runner.start()
        try:
            assert engine.run(where()) != threading.get_ident()
            result = app.execute(ACCOUNT, "r", OpenAccount("Ru", Decimal(3)))
            assert reads.wait_for("accounts", result.position, max_wait=10)
        finally:
            runner.stop()
        assert engine.run(where()) == threading.get_ident()
        app.execute(ACCOUNT, "r", Deposit(Decimal(1)))
        assert app.load(ACCOUNT, "r").state.balance == 4


def test_a_caller_inside_an_event_loop_of_its_own_is_handed_over() -> None:
    with open_store("memory://") as engine:

        async def inside() -> int:
            return engine.run(where())  # blocks this loop, as any sync call would

        mine = threading.get_ident()
        assert asyncio.run(inside()) != mine
        assert engine.run(where()) == mine


def test_calls_from_two_threads_at_once_both_end(tmp_path: Path) -> None:
    """One thread runs the loop for a slow call when another calls: the second call is
    handed over and ends while the first still runs, not after it."""
    with open_store(f"sqlite:///{tmp_path / 't.db'}") as engine:
        release = threading.Event()
        order: list[str] = []

        async def slow() -> None:
            await asyncio.to_thread(release.wait, 10)
            order.append("slow")

        async def quick() -> None:
            order.append("quick")

        first = threading.Thread(target=lambda: engine.run(slow()))
        first.start()
        engine.run(quick())
        release.set()
        first.join(10)
        assert order == ["quick", "slow"]


def test_threads_racing_to_drive_and_to_hand_over_all_end() -> None:
    """Threads calling in a tight loop keep taking the loop, giving it back (without the
    lock) and handing calls to the engine's thread as they find it taken: no call is left
    waiting for a wake-up that never comes, and every one returns its own result."""
    threads, calls = 8, 1500

    async def echo(value: int) -> int:
        if value % 7 == 0:
            await asyncio.sleep(0)  # some calls wait, and go on as tasks
        return value

    with open_store("memory://") as engine:

        def work(thread: int) -> list[int]:
            return [engine.run(echo(thread * calls + i)) for i in range(calls)]

        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(work, t) for t in range(threads)]
            results = [future.result(timeout=120) for future in futures]
        for thread, got in enumerate(results):
            assert got == list(range(thread * calls, (thread + 1) * calls))


def test_stopping_the_loop_cancels_a_call_the_caller_runs_itself() -> None:
    loop = Loop("facta-engine-test")
    started = threading.Event()
    outcome: list[str] = []

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    def call() -> None:
        try:
            loop.run(forever())
        except EngineClosed:
            outcome.append("closed")

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(10)
    loop.stop(timeout=10)  # what Engine.close does after its cleanups
    caller.join(10)
    assert outcome == ["closed"]
    assert not loop.alive


var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_a_call_that_waits_after_its_first_step_ends_with_its_result_and_context(
    steps_first: bool,
) -> None:
    """A call whose first step runs outside a task and then waits (on a timer, on another
    thread) goes on as a task: same thread, same context, its result returned; what it set
    in its context stays out of the caller's, as with a task."""

    async def waits_twice() -> tuple[str, int, bool]:
        var.set("inside")
        first = asyncio.get_running_loop()
        await asyncio.sleep(0.01)
        await asyncio.to_thread(lambda: None)
        return var.get(), threading.get_ident(), asyncio.get_running_loop() is first

    with open_store("memory://") as engine:
        assert engine._loop.steps_first is steps_first
        assert engine.run(waits_twice()) == ("inside", threading.get_ident(), True)
        assert var.get() == "unset"
        assert asyncio.run(where()) == threading.get_ident()  # no loop left running here


def test_an_error_in_a_calls_first_step_or_after_it_reaches_the_caller() -> None:
    async def fails_at_once() -> None:
        raise KeyError("at once")

    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    with open_store("memory://") as engine:
        with pytest.raises(KeyError, match="at once"):
            engine.run(fails_at_once())
        with pytest.raises(KeyError, match="later"):
            engine.run(fails_later())
        assert engine.run(where()) == threading.get_ident()  # and the loop is free again


def test_work_a_call_starts_ends_in_the_callers_thread_without_a_hand_over(
    steps_first: bool,
) -> None:
    """A snapshot every 100 events starts a task: on the memory store it ends in the caller's
    own pass of the loop (on the public path, the pass after the call's), and no later call
    is handed to the engine's thread for it."""
    with open_store("memory://") as engine:
        app = Application(engine)
        app.execute(ACCOUNT, "s", OpenAccount("Sn", Decimal(0)))
        handed: list[object] = []
        original = _loop._Call.__init__

        def counted(call: _loop._Call[object], *args: object) -> None:
            handed.append(call)
            original(call, *args)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_loop._Call, "__init__", counted)
            for _ in range(250):
                app.execute(ACCOUNT, "s", Deposit(Decimal(1)))
        assert engine._loop.steps_first is steps_first
        assert handed == []
        snapshot = engine.run(engine.engine.load_snapshot(app.stream_id(ACCOUNT, "s")))
        assert snapshot is not None
        assert snapshot.version == 200
