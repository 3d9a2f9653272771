"""facta.sync from plain threads, on every engine: commands from many threads at once lose and
duplicate nothing (conflicts between two engines on one database are retried), the engine
closes without leaving a thread, and errors reach the caller as the async API raises them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from facta import DomainError, StreamNotFound, WrongExpectedVersion
from facta.decisions import Model
from facta.examples.bank.domain import Account, AccountError, Deposit, OpenAccount, Withdraw
from facta.examples.bank.read_model import AccountsProjection
from facta.examples.courses.domain import (
    CourseError,
    DefineCourse,
    DefineCourseDecision,
    SubscribeDecision,
    SubscribeStudentToCourse,
    course_subscriptions,
)
from facta.sync import (
    Application,
    Engine,
    EngineClosed,
    ProjectionRunner,
    ReadStore,
    open_store,
)
from tests.conftest import open_scratch_postgres

ACCOUNT = Account()


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("facta-engine-")]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database, as two processes would have (memory: one, twice)."""
    if request.param == "memory":
        one = open_store("memory://")
        yield one, one
        one.close()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
        first = open_store(url)
    else:
        first = Engine.open(open_scratch_postgres)  # its schema is dropped when it closes
        url = first.url
    second = open_store(url)
    yield first, second
    second.close()
    first.close()


def test_many_threads_executing_at_once_lose_and_duplicate_nothing(
    engines: tuple[Engine, Engine],
) -> None:
    apps = [Application(engine, max_retries=50) for engine in dict.fromkeys(engines)]
    accounts, threads, deposits = 4, 16, 15
    for a in range(accounts):
        apps[0].execute(ACCOUNT, f"a{a}", OpenAccount("Ann", Decimal(0)))

    def work(thread: int) -> int:
        app = apps[thread % len(apps)]  # half the threads on each engine: real conflicts
        done = 0
        for i in range(deposits):
            app.execute(ACCOUNT, f"a{(thread + i) % accounts}", Deposit(Decimal("0.25")))
            done += 1
        return done

    with ThreadPoolExecutor(threads) as pool:
        assert sum(pool.map(work, range(threads))) == threads * deposits

    total = Decimal(0)
    for a in range(accounts):
        state = apps[-1].load(ACCOUNT, f"a{a}")
        history = apps[-1].history(ACCOUNT, f"a{a}")
        assert [e.recorded.version for e in history] == list(range(1, state.version + 1))
        total += state.state.balance
    assert total == Decimal("0.25") * threads * deposits
    log = engines[0].read_all(limit=10_000)
    assert len(log) == accounts + threads * deposits
    assert len({r.event_id for r in log}) == len(log)


def test_concurrent_decisions_from_threads_respect_the_boundary(
    engines: tuple[Engine, Engine],
) -> None:
    apps = [Application(engine, max_retries=100) for engine in dict.fromkeys(engines)]
    apps[0].decide(DefineCourseDecision(), DefineCourse("c1", 5))
    outcomes: list[str] = []

    def subscribe(student: int) -> None:
        try:
            apps[student % len(apps)].decide(
                SubscribeDecision(), SubscribeStudentToCourse("c1", f"s{student}")
            )
            outcomes.append("in")
        except CourseError as exc:
            outcomes.append(str(exc))

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(subscribe, range(12)))
    assert sorted(outcomes) == ["course 'c1' is full"] * 7 + ["in"] * 5
    taken = apps[0].state_of(Model(lambda n: n, n=course_subscriptions("c1")))
    assert taken == 5


def test_errors_reach_the_caller_unchanged(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'e.db'}") as engine:
        app = Application(engine)
        with pytest.raises(AccountError, match="Account not open"):
            app.execute(ACCOUNT, "x", Deposit(Decimal(1)))
        app.execute(ACCOUNT, "x", OpenAccount("Xi", Decimal(5)))
        with pytest.raises(DomainError, match="Insufficient funds"):
            app.execute(ACCOUNT, "x", Withdraw(Decimal(6)))
        with pytest.raises(WrongExpectedVersion):
            app.execute(ACCOUNT, "x", Deposit(Decimal(1)), expected_version=7)
        with pytest.raises(StreamNotFound):
            app.load(ACCOUNT, "x", version=9)
        assert app.load(ACCOUNT, "x").version == 1
        assert engine.stream_version("account-x") == 1


def test_close_ends_the_thread_and_refuses_later_calls(tmp_path: Path) -> None:
    before = engine_threads()
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as engine:
        app = Application(engine, inline=[AccountsProjection()])
        app.execute(ACCOUNT, "c", OpenAccount("Cy", Decimal(1)))
        assert len(engine_threads()) == len(before) + 1
    assert engine_threads() == before
    assert engine.closed
    with pytest.raises(EngineClosed):
        app.execute(ACCOUNT, "c", Deposit(Decimal(1)))
    with pytest.raises(EngineClosed):
        engine.head()
    engine.close()  # idempotent
    # What was written is there for the next engine, read model included.
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as again:
        summary = ReadStore(again).documents(AccountsProjection).get("c")
        assert summary is not None
        assert summary.balance == 1


def test_close_waits_for_calls_running_in_other_threads(tmp_path: Path) -> None:
    before = engine_threads()  # (engines other tests left open are not this test's)
    engine = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    app = Application(engine)
    app.execute(ACCOUNT, "w", OpenAccount("Wu", Decimal(0)))
    results: list[str] = []
    started = threading.Event()

    def deposit_until_closed() -> None:
        started.set()
        try:
            while True:
                app.execute(ACCOUNT, "w", Deposit(Decimal(1)))
        except EngineClosed:
            results.append("closed")

    worker = threading.Thread(target=deposit_until_closed)
    worker.start()
    started.wait()
    engine.close()
    worker.join(10)
    assert results == ["closed"]
    assert engine_threads() == before
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as again:
        version = again.stream_version("account-w")
        records = again.read_stream("account-w")
    assert [r.version for r in records] == list(range(1, version + 1))


def test_a_call_from_the_engines_own_thread_is_refused() -> None:
    with open_store("memory://") as engine:

        async def nested() -> int:
            return engine.stream_version("account-n")  # would wait for itself

        with pytest.raises(RuntimeError, match="own thread"):
            engine.run(nested())


def test_the_runner_keeps_a_read_model_from_threads(tmp_path: Path) -> None:
    before = engine_threads()
    with open_store(f"sqlite:///{tmp_path / 'r.db'}") as engine:
        app = Application(engine)
        reads = ReadStore(engine)
        accounts = reads.documents(AccountsProjection)
        with ProjectionRunner(engine, [AccountsProjection()], app=app) as runner:
            assert runner.running
            result = app.execute(ACCOUNT, "r", OpenAccount("Ru", Decimal(3)))
            assert reads.wait_for("accounts", result.position, max_wait=10)
            summary = accounts.get("r")
            assert summary is not None
            assert summary.balance == 3
        assert not runner.running
        app.execute(ACCOUNT, "r", Deposit(Decimal(2)))
        ProjectionRunner(engine, [AccountsProjection()]).catch_up()
        summary = accounts.get("r")
        assert summary is not None
        assert summary.balance == 5
        assert accounts.count() == 1
        assert [s.name for s in reads.status()] == ["accounts"]
        # Left running: closing the engine stops it.
        ProjectionRunner(engine, [AccountsProjection()]).start()
    assert engine_threads() == before
