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
from facta.examples.bank.read_model import Accounts, AccountsProjection
from facta.examples.bank.transfers import (
    RequestTransfer,
    Transfer,
    TransferError,
    TransferSaga,
    TransferState,
)
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


def test_a_transfer_needs_two_accounts_and_a_positive_amount() -> None:
    # Two different accounts is a business rule (HTTP 400): the request's schema cannot say it.
    with pytest.raises(TransferError, match="different"):
        transfer.decide(TransferState(), RequestTransfer("alice", "alice", Decimal("1.00")))
    with pytest.raises(ValueError, match="positive"):
        RequestTransfer("alice", "bob", Decimal("0"))
