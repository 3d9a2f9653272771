"""The bank's transfer saga on every backend: money moves once, a rejected debit moves
nothing, a rejected credit is compensated, and a replayed event repeats nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import msgspec
import pytest

from facta import NO_STREAM, Application, EventStore
from facta.examples.bank.domain import Account, Deposit, OpenAccount, Withdraw
from facta.examples.bank.read_model import (
    Accounts,
    AccountsProjection,
    Transfers,
    TransfersProjection,
)
from facta.examples.bank.transfers import (
    RequestTransfer,
    Transfer,
    TransferDebited,
    TransferError,
    TransferRequested,
    TransferSaga,
    TransferState,
)
from facta.projections import PolicyContext, ProjectionRunner, ReadStore
from facta.results import EventEnvelope
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
    # Two different accounts is a business rule (HTTP 400): the request's schema cannot say it.
    with pytest.raises(TransferError, match="different"):
        transfer.decide(TransferState(), RequestTransfer("alice", "alice", Decimal("1.00")))
    with pytest.raises(ValueError, match="positive"):
        RequestTransfer("alice", "bob", Decimal("0"))


BAD_IDS = {
    "space": "bad id",
    "emoji": "caf\N{HOT BEVERAGE}",
    "nul": "a\x00b",
    "newline": "bob\n",
    "too long": "x" * 300,
    "empty": "",
}
"""Shapes of account id that are no account id (the store would refuse the stream)."""


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_a_request_naming_no_account_is_refused_built_or_decoded(bad: str) -> None:
    with pytest.raises(ValueError, match="target must be 1-200"):
        RequestTransfer("alice", bad, Decimal("1.00"))
    with pytest.raises(ValueError, match="source must be 1-200"):
        RequestTransfer(bad, "alice", Decimal("1.00"))
    decoder = msgspec.json.Decoder(RequestTransfer)
    body = {"type": "RequestTransfer", "source": "alice", "target": bad, "amount": 1.0}
    with pytest.raises(msgspec.ValidationError):
        decoder.decode(msgspec.json.encode(body))


async def _request(app: Application, transfer_id: str, source: str, target: str) -> None:
    """A TransferRequested appended as another client (or an older version) wrote it,
    past the command's checks."""
    event = TransferRequested(source, target, Decimal("10.00"))
    await app.store.append(f"transfer-{transfer_id}", [app.codec.encode(event)], NO_STREAM)


async def test_requests_naming_no_account_fail_and_the_saga_goes_on(bank: Application) -> None:
    """Each bad shape of id, as target or source, and a target that does not exist: the
    transfer ends failed with the source's money where it was, the saga never stops, and
    the transfers after them complete. Money is conserved throughout."""
    await bank.execute(account, "carol", OpenAccount("Carol", Decimal("0.00")))
    before = sum([await balance(bank, a) for a in ("alice", "bob", "carol")], Decimal(0))
    await bank.execute(transfer, "ok-1", RequestTransfer("alice", "carol", Decimal("10.00")))
    failing = {}
    for shape, bad in BAD_IDS.items():
        failing[f"to-{shape.replace(' ', '-')}"] = ("alice", bad)
        failing[f"from-{shape.replace(' ', '-')}"] = (bad, "carol")
    failing["to-nobody"] = ("alice", "nobody")
    for transfer_id, (source, target) in failing.items():
        await _request(bank, transfer_id, source, target)
    async with saga(bank) as runner:
        for transfer_id in ("ok-1", *failing):
            await settle(bank, transfer_id)
        await bank.execute(transfer, "ok-2", RequestTransfer("alice", "carol", Decimal("5.00")))
        assert (await settle(bank, "ok-2")).status == "completed"
        read_store = ReadStore(bank.store)
        statuses = {s.name: s for s in await read_store.status()}
        await read_store.close()
        assert "transfer_saga" not in runner.waiting

    for transfer_id, (source, target) in failing.items():
        state = (await bank.load(transfer, transfer_id)).state
        if target == "nobody":  # found out at the credit: the debit is refunded
            assert (state.status, state.reason) == ("refunded", "Account not open")
        else:  # no account id at all: nothing moves
            side = "target" if source == "alice" else "source"
            assert state.status == "rejected", (transfer_id, state)
            assert state.reason is not None
            assert state.reason.startswith(f"{side} must be 1-200"), state.reason
    assert (await bank.load(transfer, "ok-1")).state.status == "completed"
    assert await balance(bank, "alice") == Decimal("85.00")  # 100 - 10 - 5, the rest back
    assert await balance(bank, "carol") == Decimal("15.00")
    after = sum([await balance(bank, a) for a in ("alice", "bob", "carol")], Decimal(0))
    assert after == before
    saga_status = statuses["transfer_saga"]
    assert (saga_status.state, saga_status.error, saga_status.parked) == ("running", None, 0)


async def test_a_transfer_left_debited_towards_no_account_is_refunded(bank: Application) -> None:
    """The log as the saga left it before ids were checked: the source debited, the credit
    never made. The saga (restarted after the fix) records the failure and refunds."""
    await _request(bank, "stuck", "alice", "bad id")
    withdrawal = Withdraw(Decimal("10.00"))
    await bank.execute(account, "alice", withdrawal)
    await bank.store.append("transfer-stuck", [bank.codec.encode(TransferDebited())], 1)
    assert await balance(bank, "alice") == Decimal("90.00")
    async with saga(bank):
        state = await settle(bank, "stuck")
    assert state.status == "refunded"
    assert state.reason is not None
    assert state.reason.startswith("target must be 1-200")
    assert await balance(bank, "alice") == Decimal("100.00")
