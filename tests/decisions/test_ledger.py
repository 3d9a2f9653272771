"""A transfer as one decision over two accounts' tags: given/when/then, and money conserved
under concurrent transfers on every engine with consistency boundaries."""

from __future__ import annotations

import asyncio
import contextlib
import random
from decimal import Decimal

import pytest

from facta import Application, Boundaries, Engine, Model
from facta.examples.ledger.domain import (
    AccountOpened,
    Deposit,
    DepositDecision,
    LedgerError,
    MoneyDeposited,
    MoneyTransferred,
    One,
    OpenAccount,
    OpenAccountDecision,
    TransferDecision,
    TransferMoney,
    account,
)
from facta.testing import given

transfer = TransferDecision()
OPEN = [AccountOpened("a"), AccountOpened("b"), MoneyDeposited("a", Decimal(100))]


def test_a_transfer_moves_money_between_two_open_accounts() -> None:
    given(transfer, OPEN).when(TransferMoney("a", "b", Decimal(30))).then(
        [MoneyTransferred("a", "b", Decimal(30))]
    )


def test_a_transfer_needs_both_accounts_and_the_funds() -> None:
    given(transfer, OPEN).when(TransferMoney("a", "c", Decimal(1))).then_raises(
        LedgerError, "'c' does not exist"
    )
    given(transfer, OPEN).when(TransferMoney("a", "b", Decimal(101))).then_raises(
        LedgerError, "insufficient"
    )
    moved = [*OPEN, MoneyTransferred("a", "b", Decimal(60))]
    given(transfer, moved).when(TransferMoney("a", "b", Decimal(50))).then_raises(
        LedgerError, "insufficient"
    )
    given(transfer, moved).when(TransferMoney("b", "a", Decimal(60))).then(
        [MoneyTransferred("b", "a", Decimal(60))]
    )


def test_open_and_deposit() -> None:
    given(OpenAccountDecision()).when(OpenAccount("a")).then([AccountOpened("a")])
    given(OpenAccountDecision(), OPEN).when(OpenAccount("a")).then_raises(LedgerError, "already")
    given(DepositDecision()).when(Deposit("a", Decimal(1))).then_raises(LedgerError, "not exist")
    with pytest.raises(ValueError, match="two different"):
        TransferMoney("a", "a", Decimal(1))


async def test_concurrent_transfers_conserve_money_and_never_overdraw(store: Engine) -> None:
    if store.capability(Boundaries) is None:
        pytest.skip(f"the {store.name} engine has no consistency boundaries")
    app = Application(store, max_retries=50)
    names = ["a", "b", "c"]
    for name in names:
        await app.decide(OpenAccountDecision(), OpenAccount(name))
        await app.decide(DepositDecision(), Deposit(name, Decimal(50)))
    rng = random.Random(7)
    pairs = [rng.sample(names, 2) for _ in range(30)]

    async def move(source: str, target: str) -> None:
        with contextlib.suppress(LedgerError):  # insufficient funds: a rule, not a failure
            await app.decide(transfer, TransferMoney(source, target, Decimal(20)))

    await asyncio.gather(*(move(s, t) for s, t in pairs))
    balances = []
    for name in names:
        state = await app.state_of(Model(One, account=account(name)))
        balances.append(state.account.balance)
    assert sum(balances) == Decimal(150)
    assert min(balances) >= 0
