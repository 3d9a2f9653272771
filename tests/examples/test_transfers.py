"""The bank's transfer saga on every backend: money moves once, a rejected debit moves
nothing, a rejected credit is compensated, and a replayed event repeats nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from facta import Application, EventStore
from facta.application import EventEnvelope
from facta.examples.bank.domain import Account, Deposit, OpenAccount
from facta.examples.bank.read_model import (
    Accounts,
    AccountsProjection,
    Transfers,
    TransfersProjection,
)
from facta.examples.bank.transfers import RequestTransfer, Transfer, TransferSaga, TransferState
from facta.projections import PolicyContext, ProjectionRunner, ReadStore
from tests.projections.helpers import eventually

account, transfer = Account(), Transfer()
FINAL = {"completed", "rejected", "refunded"}


@pytest.fixture
async def bank(store: EventStore) -> Application:
    app = Application(store)
    await app.execute(account, "alice", OpenAccount("Alice", Decimal("100.00")))
    await app.execute(account, "bob", OpenAccount("Bob", Decimal("5.00")))
    return app


@contextlib.asynccontextmanager
async def saga(app: Application) -> AsyncIterator[ProjectionRunner]:
    runner = ProjectionRunner(app.store, [TransferSaga(), AccountsProjection()], app=app)
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.close()


async def settle(app: Application, transfer_id: str) -> TransferState:
    async def final() -> bool:
        return (await app.load(transfer, transfer_id)).state.status in FINAL

    await eventually(final)
    return (await app.load(transfer, transfer_id)).state


async def balance(app: Application, account_id: str) -> Decimal:
    return (await app.load(account, account_id)).state.balance


async def test_a_transfer_moves_the_money_once_with_correlation_carried_over(
    bank: Application,
) -> None:
    await bank.execute(
        transfer, "t1", RequestTransfer("alice", "bob", Decimal("30.00")), command_id="req-1"
    )
    async with saga(bank):
        state = await settle(bank, "t1")
    assert state.status == "completed"
    assert await balance(bank, "alice") == Decimal("70.00")
    assert await balance(bank, "bob") == Decimal("35.00")

    chain = await bank.store.read_all(limit=100)
    steps = [e for e in chain if e.stream_id in ("account-alice", "account-bob", "transfer-t1")]
    by_id = {e.event_id: e for e in chain}
    caused = [e for e in steps if e.meta.get("causation_id") in by_id]
    assert [(e.stream_id, e.type) for e in caused] == [
        ("account-alice", "MoneyWithdrawn"),
        ("transfer-t1", "TransferDebited"),
        ("account-bob", "MoneyDeposited"),
        ("transfer-t1", "TransferCompleted"),
    ]
    for event in caused:
        assert event.meta["correlation_id"] == "req-1"
        cause = by_id[event.meta["causation_id"]]
        assert cause.stream_id == "transfer-t1"


async def test_a_rejected_debit_moves_nothing(bank: Application) -> None:
    await bank.execute(transfer, "t2", RequestTransfer("bob", "alice", Decimal("50.00")))
    async with saga(bank):
        state = await settle(bank, "t2")
    assert (state.status, state.reason) == ("rejected", "Insufficient funds")
    assert await balance(bank, "alice") == Decimal("100.00")
    assert await balance(bank, "bob") == Decimal("5.00")


async def test_a_rejected_credit_is_compensated_by_a_refund(bank: Application) -> None:
    await bank.execute(transfer, "t3", RequestTransfer("alice", "nobody", Decimal("40.00")))
    async with saga(bank):
        state = await settle(bank, "t3")
        read_store = ReadStore(bank.store)
        assert await read_store.wait_for("accounts", await bank.store.head(), 10)
        totals = await Accounts(read_store).totals()
        await read_store.close()
    assert (state.status, state.reason) == ("refunded", "Account not open")
    assert await balance(bank, "alice") == Decimal("100.00")
    assert [e.type for e in await bank.store.read_stream("account-alice")] == [
        "AccountOpened",
        "MoneyWithdrawn",
        "MoneyDeposited",
    ]
    assert await bank.store.stream_version("account-nobody") == 0
    assert totals.accounts == 2
    assert totals.balance == Decimal("105.00")


async def test_a_replayed_event_executes_nothing_twice(bank: Application) -> None:
    """A crash between a step's command and the checkpoint delivers the event again: the
    derived command ids and the state guards make the second delivery a no-op."""
    await bank.execute(transfer, "t4", RequestTransfer("alice", "bob", Decimal("10.00")))
    [requested] = bank.decode_all(await bank.store.read_stream("transfer-t4"))
    saga_policy = TransferSaga()
    await saga_policy.handle(requested, PolicyContext(bank, "transfer_saga", requested))
    head = await bank.store.head()
    await saga_policy.handle(requested, PolicyContext(bank, "transfer_saga", requested))
    assert await bank.store.head() == head
    assert await balance(bank, "alice") == Decimal("90.00")

    # Without the guard, the command id alone keeps a step from running twice.
    envelope = EventEnvelope(requested.event, requested.recorded)
    context = PolicyContext(bank, "transfer_saga", envelope)
    first = await context.execute(account, "bob", Deposit(Decimal("1.00")), step="tip")
    again = await PolicyContext(bank, "transfer_saga", envelope).execute(
        account, "bob", Deposit(Decimal("1.00")), step="tip"
    )
    assert again.version == first.version
    assert await balance(bank, "bob") == Decimal("6.00")


async def test_the_transfers_read_model_follows_the_saga_and_rebuilds_the_same(
    bank: Application,
) -> None:
    """The asynchronous read model behind ``GET /transfers``: one document per transfer with
    where the saga got to, filtered by account and status; a rebuild from the log (what
    ``facta projections rebuild transfers`` runs) gives the same documents."""
    requests = {
        "t1": RequestTransfer("alice", "bob", Decimal("30.00")),  # completed
        "t2": RequestTransfer("bob", "alice", Decimal("50.00")),  # rejected
        "t3": RequestTransfer("alice", "nobody", Decimal("40.00")),  # refunded
    }
    for transfer_id, request in requests.items():
        await bank.execute(transfer, transfer_id, request)
    runner = ProjectionRunner(
        bank.store, [TransferSaga(), TransfersProjection()], app=bank, batch_size=2
    )
    task = asyncio.create_task(runner.run())
    read_store = ReadStore(bank.store)
    try:
        for transfer_id in requests:
            await settle(bank, transfer_id)
        assert await read_store.wait_for("transfers", await bank.store.head(), 10)
        transfers = Transfers(read_store)
        before = (await transfers.list()).items
        assert [(t.transfer_id, t.status, t.reason) for t in before] == [
            ("t1", "completed", None),
            ("t2", "rejected", "Insufficient funds"),
            ("t3", "refunded", "Account not open"),
        ]
        assert [(t.source, t.target, t.amount, t.version) for t in before] == [
            ("alice", "bob", Decimal("30.00"), 3),
            ("bob", "alice", Decimal("50.00"), 2),
            ("alice", "nobody", Decimal("40.00"), 4),
        ]
        assert all(t.requested_at < t.updated_at for t in before)
        from_alice = await transfers.list(source="alice")
        assert [t.transfer_id for t in from_alice.items] == ["t1", "t3"]
        assert [t.transfer_id for t in (await transfers.list(status="refunded")).items] == ["t3"]
        assert (await transfers.list(target="bob", status="rejected")).items == []
        assert await transfers.get("t2") == before[1]

        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.rebuild("transfers")
        [status] = [s for s in await read_store.status("transfers") if s.active]
        assert status.slot == 2
        assert (await transfers.list()).items == before
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.close()
        await read_store.close()


def test_a_transfer_needs_two_accounts_and_a_positive_amount() -> None:
    with pytest.raises(ValueError, match="different"):
        RequestTransfer("alice", "alice", Decimal("1.00"))
    with pytest.raises(ValueError, match="positive"):
        RequestTransfer("alice", "bob", Decimal("0"))
