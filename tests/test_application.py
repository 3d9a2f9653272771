"""The command side against every backend: execute, conflicts, idempotency, time travel."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from facta import (
    REDACTED,
    Application,
    CommandIdReused,
    EventStore,
    InvalidStreamId,
    RecordedEvent,
    Snapshot,
    StreamNotFound,
    WrongExpectedVersion,
    forget,
)
from facta.examples.bank.domain import (
    Account,
    AccountError,
    AccountOpened,
    AccountState,
    Deposit,
    MoneyDeposited,
    MoneyWithdrawn,
    OpenAccount,
    Withdraw,
)
from facta.store.engine import Engine

account = Account()


async def open_alice(app: Application, entity: str = "acc-001", balance: str = "1000.0") -> None:
    await app.execute(account, entity, OpenAccount("Alice", Decimal(balance)))


async def test_the_seed_walkthrough(store: EventStore) -> None:
    app = Application(store)
    await open_alice(app)
    await app.execute(account, "acc-001", Deposit(Decimal("500.0")))
    result = await app.execute(account, "acc-001", Withdraw(Decimal("200.0")))
    assert (result.stream_id, result.version) == ("account-acc-001", 3)
    assert result.events == (MoneyWithdrawn(Decimal("200.0")),)
    assert result.state == AccountState(True, "Alice", Decimal("1300.0"))
    assert result.position == await store.head()
    history = await app.history(account, "acc-001")
    assert [h.event for h in history] == [
        AccountOpened("Alice", Decimal("1000.0")),
        MoneyDeposited(Decimal("500.0")),
        MoneyWithdrawn(Decimal("200.0")),
    ]
    stored = await store.read_stream("account-acc-001")
    assert stored[0].data == b'{"type":"AccountOpened","owner":"Alice","initial_balance":1000.0}'
    # a fresh application (no cache) loads the same state from the store
    loaded = await Application(store).load(account, "acc-001")
    assert (loaded.version, loaded.state.balance) == (3, Decimal("1300.0"))


async def test_a_rejected_command_raises_the_domain_error_and_writes_nothing(
    store: EventStore,
) -> None:
    app = Application(store)
    await open_alice(app, balance="10")
    head = await store.head()
    with pytest.raises(AccountError, match="Insufficient funds"):
        await app.execute(account, "acc-001", Withdraw(Decimal(11)))
    with pytest.raises(AccountError, match="Account not open"):
        await app.execute(account, "acc-404", Deposit(Decimal(1)))
    assert await store.head() == head


async def test_fifty_concurrent_withdrawals_that_can_afford_ten(store: EventStore) -> None:
    # Two applications on one store stand for two processes: separate caches and locks, so
    # they really conflict and must retry through the store's expected-version check.
    first, second = Application(store), Application(store)
    await open_alice(first, balance="100.0")

    async def withdraw(app: Application) -> str:
        try:
            await app.execute(account, "acc-001", Withdraw(Decimal(10)))
            return "ok"
        except AccountError as error:
            return str(error)

    outcomes = await asyncio.gather(*(withdraw((first, second)[i % 2]) for i in range(50)))
    assert outcomes.count("ok") == 10
    assert outcomes.count("Insufficient funds") == 40
    events = await store.read_stream("account-acc-001")
    assert len(events) == 11
    running = []
    folded = account.initial
    for envelope in first.decode_all(events):
        folded = account.evolve(folded, envelope.event)  # type: ignore[arg-type]
        running.append(folded.balance)
    assert min(running) >= 0
    assert running[-1] == 0


async def test_a_pinned_expected_version_is_not_retried(store: EventStore) -> None:
    app = Application(store)
    await open_alice(app)
    ok = await app.execute(account, "acc-001", Deposit(Decimal(1)), expected_version=1)
    assert ok.version == 2
    with pytest.raises(WrongExpectedVersion) as caught:
        await app.execute(account, "acc-001", Deposit(Decimal(1)), expected_version=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert await store.stream_version("account-acc-001") == 2


async def test_a_creation_command_writes_without_reading_the_new_stream(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAccount is one of the account's creation_commands: on a stream the app has not
    cached, it is decided on the initial state and appended at version 0, unread."""
    reads: list[str] = []
    read_stream = store.events.read_stream

    async def counted(stream_id: str, **options: Any) -> list[RecordedEvent]:
        reads.append(stream_id)
        return await read_stream(stream_id, **options)

    monkeypatch.setattr(store.events, "read_stream", counted)
    app = Application(store)
    result = await app.execute(account, "acc-new", OpenAccount("Ann", Decimal(5)))
    assert (result.version, result.state.balance, reads) == (1, Decimal(5), [])
    # Another app's guess meets the stream: refused, decided again on what it holds.
    other = Application(store, max_retries=0)
    with pytest.raises(AccountError, match="already open"):
        await other.execute(account, "acc-new", OpenAccount("Eve", Decimal(9)))
    assert reads == ["account-acc-new"]
    assert await store.stream_version("account-acc-new") == 1
    deposited = await other.execute(account, "acc-new", Deposit(Decimal(1)))
    assert (deposited.version, deposited.state.owner) == (2, "Ann")


async def test_racing_creations_open_one_account(store: EventStore) -> None:
    apps = [Application(store) for _ in range(8)]
    results = await asyncio.gather(
        *(
            app.execute(account, "acc-race", OpenAccount(f"Owner {n}", Decimal(n)))
            for n, app in enumerate(apps)
        ),
        return_exceptions=True,
    )
    opened = [r for r in results if not isinstance(r, BaseException)]
    assert len(opened) == 1
    assert all(isinstance(r, AccountError) for r in results if isinstance(r, BaseException))
    assert [r.version for r in await store.read_stream("account-acc-race")] == [1]


async def test_a_stale_cache_costs_a_retry_not_a_wrong_answer(store: EventStore) -> None:
    mine, theirs = Application(store), Application(store)
    await open_alice(mine, balance="100")
    await mine.execute(account, "acc-001", Deposit(Decimal(1)))  # cached at version 2
    await theirs.execute(account, "acc-001", Withdraw(Decimal(101)))  # balance now 0
    with pytest.raises(AccountError, match="Insufficient funds"):
        await mine.execute(account, "acc-001", Withdraw(Decimal(1)))
    result = await mine.execute(account, "acc-001", Deposit(Decimal(5)))
    assert (result.version, result.state.balance) == (4, Decimal(5))


async def test_a_stale_cached_state_catches_up_with_only_the_events_since(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two app processes on one store: one decides on its cached state, which the other
    has moved past; the conflict reads only the other's events, and the command succeeds."""
    mine, theirs = Application(store), Application(store)
    await open_alice(mine, balance="100")
    await mine.execute(account, "acc-001", Deposit(Decimal(1)))  # cached at version 2
    for _ in range(3):
        await theirs.execute(account, "acc-001", Deposit(Decimal(1)))  # now at version 5
    read_from: list[int] = []
    events = store.events  # what the application reads streams from
    read_stream = events.read_stream

    async def counted(stream_id: str, **options: Any) -> list[RecordedEvent]:
        read_from.append(options.get("from_version", 1))
        return await read_stream(stream_id, **options)

    monkeypatch.setattr(events, "read_stream", counted)
    result = await mine.execute(account, "acc-001", Deposit(Decimal(1)))
    assert (result.version, result.state.balance) == (6, Decimal(105))
    assert read_from == [3]  # the events after version 2, not the whole stream again
    assert mine.cache.get("account-acc-001") == (result.state, 6)


async def test_the_current_state_loads_from_the_cache_and_what_was_appended_since(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, theirs = Application(store), Application(store)
    await open_alice(mine, balance="10")  # cached at version 1
    await theirs.execute(account, "acc-001", Deposit(Decimal(5)))
    read_from: list[int] = []
    events = store.events
    read_stream = events.read_stream

    async def counted(stream_id: str, **options: Any) -> list[RecordedEvent]:
        read_from.append(options.get("from_version", 1))
        return await read_stream(stream_id, **options)

    monkeypatch.setattr(events, "read_stream", counted)
    now = await mine.load(account, "acc-001")
    assert (now.version, now.state.balance) == (2, Decimal(15))
    again = await mine.load(account, "acc-001")
    assert again == now
    assert read_from == [2, 3]  # each time only past the version it knew
    then = await mine.load(account, "acc-001", version=1)  # time travel: from the start
    assert (then.version, then.state.balance) == (1, Decimal(10))
    assert read_from[-1] == 1
    fresh = await Application(store).load(account, "acc-001")  # nothing cached: all of it
    assert fresh == now


async def test_a_command_id_makes_a_command_idempotent(store: EventStore) -> None:
    app = Application(store)
    await open_alice(app, balance="50")
    first = await app.execute(account, "acc-001", Withdraw(Decimal(50)), command_id="req-1")
    # the repeat would now be rejected (balance 0), yet it returns the first result
    again = await app.execute(account, "acc-001", Withdraw(Decimal(50)), command_id="req-1")
    other_app = await Application(store).execute(
        account, "acc-001", Withdraw(Decimal(50)), command_id="req-1"
    )
    assert again == first == other_app
    assert await store.stream_version("account-acc-001") == 2
    # the same key on another account is another command
    await open_alice(app, "acc-002")
    elsewhere = await app.execute(account, "acc-002", Deposit(Decimal(1)), command_id="req-1")
    assert elsewhere.version == 2


async def test_a_command_id_reused_for_another_command_is_refused(store: EventStore) -> None:
    app = Application(store)
    await open_alice(app, balance="0")
    first = await app.execute(account, "acc-001", Deposit(Decimal(1)), command_id="k-1")
    for other in (Deposit(Decimal(500)), Withdraw(Decimal(1))):
        with pytest.raises(CommandIdReused, match="k-1"):
            await app.execute(account, "acc-001", other, command_id="k-1")
        with pytest.raises(CommandIdReused):  # an application without the cache, too
            await Application(store).execute(account, "acc-001", other, command_id="k-1")
    assert await app.execute(account, "acc-001", Deposit(Decimal(1)), command_id="k-1") == first
    assert await store.stream_version("account-acc-001") == 2
    assert (await app.load(account, "acc-001")).state.balance == Decimal(1)


async def test_a_rejected_command_keeps_no_command_id(store: EventStore) -> None:
    app = Application(store)
    await open_alice(app, balance="0")
    with pytest.raises(AccountError, match="Insufficient funds"):
        await app.execute(account, "acc-001", Withdraw(Decimal(5)), command_id="k-2")
    await app.execute(account, "acc-001", Deposit(Decimal(9)))
    # the retry runs again, on the state as it is now
    retried = await app.execute(account, "acc-001", Withdraw(Decimal(5)), command_id="k-2")
    assert retried.state.balance == Decimal(4)


async def test_racing_different_commands_under_one_id_apply_one(store: EventStore) -> None:
    apps = [Application(store) for _ in range(4)]
    await open_alice(apps[0], balance="0")
    outcomes = await asyncio.gather(
        *(
            apps[i % 4].execute(account, "acc-001", Deposit(Decimal(7 + i % 2)), command_id="r")
            for i in range(12)
        ),
        return_exceptions=True,
    )
    assert await store.stream_version("account-acc-001") == 2
    balance = (await apps[0].load(account, "acc-001")).state.balance
    for i, outcome in enumerate(outcomes):
        if Decimal(7 + i % 2) == balance:
            assert not isinstance(outcome, BaseException), outcome
            assert outcome.version == 2
        else:
            assert isinstance(outcome, CommandIdReused), outcome


async def test_concurrent_repeats_of_one_command_apply_once(store: EventStore) -> None:
    apps = [Application(store) for _ in range(4)]
    await open_alice(apps[0], balance="0")
    results = await asyncio.gather(
        *(
            apps[i % 4].execute(account, "acc-001", Deposit(Decimal(7)), command_id="pay-9")
            for i in range(12)
        )
    )
    assert {(r.version, r.state.balance) for r in results} == {(2, Decimal(7))}
    assert await store.stream_version("account-acc-001") == 2


async def test_metadata_flows_into_events(store: EventStore) -> None:
    app = Application(store)
    await app.execute(
        account,
        "acc-001",
        OpenAccount("Alice", Decimal(1)),
        command_id="cmd-1",
        metadata={"correlation_id": "corr-1", "user": "alice"},
    )
    await app.execute(account, "acc-001", Deposit(Decimal(1)))
    first, second = await store.read_stream("account-acc-001")
    fingerprint = first.meta["command_fingerprint"]
    assert first.meta == {
        "correlation_id": "corr-1",
        "causation_id": "cmd-1",
        "command_id": "cmd-1",
        "command_fingerprint": fingerprint,
        "user": "alice",
    }
    assert len(fingerprint) == 32
    assert second.meta["correlation_id"] == second.meta["causation_id"]
    assert "command_id" not in second.meta


async def test_time_travel_by_version_and_by_time(store: EventStore) -> None:
    app = Application(store)
    await open_alice(app, balance="0")
    for _ in range(5):
        await app.execute(account, "acc-001", Deposit(Decimal(1)))
    at_three = await app.load(account, "acc-001", version=3)
    assert (at_three.version, at_three.state.balance) == (3, Decimal(2))
    events = await store.read_stream("account-acc-001")
    at_time = await app.load(account, "acc-001", at=events[1].recorded_at)
    assert at_time.version >= 2
    assert at_time.state.balance == at_time.version - 1
    before_anything = await app.load(account, "acc-001", at=events[0].recorded_at - 10)
    assert before_anything.version == 0
    with pytest.raises(StreamNotFound, match="no version 7"):
        await app.load(account, "acc-001", version=7)
    never = await app.load(account, "nobody")
    assert (never.version, never.state) == (0, account.initial)


async def test_snapshots_are_taken_and_used(store: EventStore) -> None:
    app = Application(store)
    await open_alice(app, balance="0")
    for _ in range(249):  # Account snapshots every 100 events
        await app.execute(account, "acc-001", Deposit(Decimal(1)))
    await app.drain()
    snapshot = await store.load_snapshot("account-acc-001")
    assert snapshot is not None
    assert snapshot.version == 200
    assert msgspec.json.decode(snapshot.data, type=AccountState).balance == 199
    # Prove loads start from the snapshot: plant one whose state differs from the fold.
    fake = AccountState(True, "Planted", Decimal(1_000_000))
    await store.save_snapshot(
        Snapshot("account-acc-001", 240, 1, msgspec.json.encode(fake), time.time())
    )
    loaded = await Application(store).load(account, "acc-001")
    assert (loaded.version, loaded.state.owner) == (250, "Planted")
    at_230 = await Application(store).load(account, "acc-001", version=230)
    assert (at_230.state.owner, at_230.state.balance) == ("Alice", 229)


async def test_a_snapshot_of_another_state_schema_is_ignored(store: EventStore) -> None:
    app = Application(store)
    await open_alice(app, balance="5")
    await store.save_snapshot(Snapshot("account-acc-001", 1, 99, b'{"not":"a state"}', time.time()))
    loaded = await Application(store).load(account, "acc-001")
    assert (loaded.version, loaded.state.balance) == (1, Decimal(5))


async def test_the_state_cache_is_bounded(store: EventStore) -> None:
    app = Application(store, cache_size=3)
    for i in range(6):
        await open_alice(app, f"acc-{i}")
    assert len(app.cache) == 3


@pytest.mark.parametrize("bad", ["", "white space", "x" * 400])
async def test_bad_ids_are_refused(store: EventStore, bad: str) -> None:
    with pytest.raises(InvalidStreamId):
        await Application(store).execute(account, bad, Deposit(Decimal(1)))


async def test_personal_states_are_kept_past_the_key_cache_until_a_subject_is_forgotten(
    store: Engine,
) -> None:
    """A cached state whose aggregate's events have personal fields (an account's owner) is
    trusted for as long as the keys are cached (Vault.cache_seconds); then one read of the
    key store's count of forgets renews it, unless a subject was forgotten meanwhile (here
    without telling this application, as another process would): then it is dropped, and
    loaded again with the field redacted. A transfer's state holds none, and stays."""
    from facta.examples.bank.transfers import RequestTransfer, Transfer

    assert store.vault is not None
    store.vault.cache_seconds = 0.2
    app = Application(store)
    assert app.cache.max_age == 0.2
    await open_alice(app)
    await app.execute(Transfer(), "t-1", RequestTransfer("acc-001", "acc-002", Decimal(5)))
    await app.load(account, "acc-001")
    await app.load(Transfer(), "t-1")
    cached = app.cache.get("account-acc-001")
    assert cached is not None
    assert app.cache.get("transfer-t-1") is not None
    await asyncio.sleep(0.3)
    assert app.cache.get("account-acc-001") is None  # past the keys' age: not trusted
    assert app.cache.get("transfer-t-1") is not None
    await app.cache.check_trust()  # nothing forgotten: the same state, not loaded again
    again = app.cache.get("account-acc-001")
    assert again is not None
    assert again[0] is cached[0]
    result = await app.execute(account, "acc-001", Deposit(Decimal(1)))
    assert result.state.balance == Decimal("1001.0")
    assert result.state.owner == "Alice"

    await forget(store, "account-acc-001")  # no app: this one's cache is not told
    assert app.cache.get("account-acc-001") is not None  # trusted for the keys' age still
    await asyncio.sleep(0.3)
    await app.cache.check_trust()
    assert app.cache.get("account-acc-001") is None  # dropped, with the keys cached
    assert app.cache.get("transfer-t-1") is not None
    result = await app.execute(account, "acc-001", Deposit(Decimal(1)))
    assert result.state.balance == Decimal("1002.0")
    assert result.state.owner == REDACTED
