"""A ledger of accounts where a transfer is ONE decision over two accounts.

The bank example moves money with a saga: debit one account's stream, then credit the
other's, and refund when the credit fails; between the steps the money is in flight. Here
every event is tagged with the accounts it touches (``account:<id>``), and a transfer is
decided on the balances of both accounts and appended as one event tagged with both, on
the condition that neither account changed since the read: atomic, with no saga and no
money in flight. A deposit to A and a transfer from B to C never conflict; two transfers
from A do (one of them decides again on A's new balance).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

from facta import Command, Decision, DomainError, Event, Fold, Model, Tag

AccountTag = Tag("account")


def _positive(amount: Decimal) -> None:
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount must be a positive number, not {amount}")


class OpenAccount(Command, frozen=True):
    account_id: str


class Deposit(Command, frozen=True):
    account_id: str
    amount: Decimal

    def __post_init__(self) -> None:
        _positive(self.amount)


class TransferMoney(Command, frozen=True):
    source: str
    target: str
    amount: Decimal

    def __post_init__(self) -> None:
        _positive(self.amount)
        if self.source == self.target:
            raise ValueError("a transfer needs two different accounts")


class AccountOpened(Event, frozen=True):
    account_id: Annotated[str, AccountTag]


class MoneyDeposited(Event, frozen=True):
    account_id: Annotated[str, AccountTag]
    amount: Decimal


class MoneyTransferred(Event, frozen=True):
    source: Annotated[str, AccountTag]
    target: Annotated[str, AccountTag]
    amount: Decimal


class LedgerError(DomainError):
    """A ledger command broke a business rule."""


class Account(msgspec.Struct, frozen=True):
    """One account as a decision sees it."""

    open: bool = False
    balance: Decimal = Decimal(0)


LedgerEvent = AccountOpened | MoneyDeposited | MoneyTransferred


def account(account_id: str) -> Fold[Account]:
    """Whether ``account_id`` is open, and its balance: every event tagged with it."""

    def evolve(state: Account, event: LedgerEvent) -> Account:
        match event:
            case AccountOpened():
                return Account(True, state.balance)
            case MoneyDeposited(amount=amount):
                return Account(state.open, state.balance + amount)
            case MoneyTransferred(source=source, amount=amount):
                change = -amount if source == account_id else amount
                return Account(state.open, state.balance + change)
        return state

    return Fold(
        Account(),
        evolve,
        (AccountOpened, MoneyDeposited, MoneyTransferred),
        (f"account:{account_id}",),
    )


class One(msgspec.Struct, frozen=True):
    account: Account


class OpenAccountDecision(Decision[One, OpenAccount, AccountOpened]):
    name = "open_account"

    def model(self, command: OpenAccount) -> Model[One]:
        return Model(One, account=account(command.account_id))

    def decide(self, state: One, command: OpenAccount) -> list[AccountOpened]:
        if state.account.open:
            raise LedgerError(f"account {command.account_id!r} is open already")
        return [AccountOpened(command.account_id)]


class DepositDecision(Decision[One, Deposit, MoneyDeposited]):
    name = "deposit"

    def model(self, command: Deposit) -> Model[One]:
        return Model(One, account=account(command.account_id))

    def decide(self, state: One, command: Deposit) -> list[MoneyDeposited]:
        if not state.account.open:
            raise LedgerError(f"account {command.account_id!r} does not exist")
        return [MoneyDeposited(command.account_id, command.amount)]


class Both(msgspec.Struct, frozen=True):
    source: Account
    target: Account


class TransferDecision(Decision[Both, TransferMoney, MoneyTransferred]):
    name = "transfer"

    def model(self, command: TransferMoney) -> Model[Both]:
        return Model(Both, source=account(command.source), target=account(command.target))

    def decide(self, state: Both, command: TransferMoney) -> list[MoneyTransferred]:
        for name, side in ((command.source, state.source), (command.target, state.target)):
            if not side.open:
                raise LedgerError(f"account {name!r} does not exist")
        if state.source.balance < command.amount:
            raise LedgerError(f"insufficient funds in account {command.source!r}")
        return [MoneyTransferred(command.source, command.target, command.amount)]
