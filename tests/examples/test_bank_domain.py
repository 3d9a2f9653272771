"""The bank decider, by given/when/then: no store involved."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from facta.examples.bank.domain import (
    Account,
    AccountCommand,
    AccountError,
    AccountOpened,
    AccountState,
    Deposit,
    MoneyDeposited,
    MoneyWithdrawn,
    OpenAccount,
    Withdraw,
)
from facta.testing import given

account = Account()
opened = AccountOpened("Alice", Decimal("1000.0"))


def test_opening_an_account() -> None:
    state = given(account).when(OpenAccount("Alice", Decimal("1000.0"))).then([opened])
    assert state == AccountState(True, "Alice", Decimal("1000.0"))


def test_the_seed_walkthrough_folds_to_1300() -> None:
    history = [opened, MoneyDeposited(Decimal("500.0"))]
    state = (
        given(account, history)
        .when(Withdraw(Decimal("200.0")))
        .then([MoneyWithdrawn(Decimal("200.0"))])
    )
    assert state.balance == Decimal("1300.0")
    assert msgspec.json.Encoder(decimal_format="number").encode(state.balance) == b"1300.0"


@pytest.mark.parametrize(
    ("history", "command", "message"),
    [
        ([opened], OpenAccount("Bob", Decimal(1)), "Account already open"),
        ([], Deposit(Decimal(1)), "Account not open"),
        ([], Withdraw(Decimal(1)), "Account not open"),
        ([opened], Withdraw(Decimal("1000.01")), "Insufficient funds"),
    ],
)
def test_business_rules_reject(
    history: list[AccountOpened], command: AccountCommand, message: str
) -> None:
    given(account, history).when(command).then_raises(AccountError, message)


def test_withdrawing_the_whole_balance_is_allowed() -> None:
    state = (
        given(account, [opened])
        .when(Withdraw(Decimal(1000)))
        .then([MoneyWithdrawn(Decimal("1000.0"))])
    )
    assert state.balance == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"type":"Deposit","amount":0}',
        b'{"type":"Deposit","amount":-5}',
        b'{"type":"Deposit","amount":"NaN"}',
        b'{"type":"Deposit","amount":"Infinity"}',
        b'{"type":"Deposit","amount":1.001}',
        b'{"type":"Deposit","amount":1000000000000.01}',
        b'{"type":"Deposit","amount":1e400}',
        b'{"type":"Deposit"}',
        b'{"type":"OpenAccount","owner":"  ","initial_balance":1}',
        b'{"type":"OpenAccount","owner":"Alice","initial_balance":-1}',
        b'{"type":"Steal","amount":1}',
    ],
)
def test_malformed_commands_do_not_decode(body: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(body, type=AccountCommand)


def test_owner_length_is_bounded() -> None:
    OpenAccount("x" * 200, Decimal(0))
    with pytest.raises(ValueError, match="owner"):
        OpenAccount("x" * 201, Decimal(0))


def test_amounts_are_written_with_a_decimal_place_like_the_seed() -> None:
    [event] = account.decide(AccountState(True, "A", Decimal(0)), Deposit(Decimal("1E+3")))
    assert msgspec.json.Encoder(decimal_format="number").encode(event) == (
        b'{"type":"MoneyDeposited","amount":1000.0}'
    )
