"""The given/when/then kit reports failures clearly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from facta.examples.bank.domain import (
    Account,
    AccountError,
    AccountOpened,
    Deposit,
    MoneyDeposited,
    Withdraw,
)
from facta.testing import given

opened = AccountOpened("Alice", Decimal("10.0"))


def test_then_fails_on_other_events() -> None:
    with pytest.raises(AssertionError, match="expected events"):
        given(Account(), [opened]).when(Deposit(Decimal(1))).then([MoneyDeposited(Decimal(2))])


def test_then_fails_when_the_command_raised() -> None:
    with pytest.raises(AssertionError, match="Insufficient funds"):
        given(Account(), [opened]).when(Withdraw(Decimal(20))).then([])


def test_then_raises_fails_when_events_were_caused() -> None:
    with pytest.raises(AssertionError, match="expected AccountError"):
        given(Account(), [opened]).when(Deposit(Decimal(1))).then_raises(AccountError)


def test_then_raises_checks_the_message() -> None:
    with pytest.raises(AssertionError, match="does not match"):
        given(Account(), [opened]).when(Withdraw(Decimal(20))).then_raises(AccountError, "frozen")
