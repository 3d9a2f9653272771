"""Bank accounts as a decider: open, deposit, withdraw.

Money is Decimal, never float. Commands check their own shape when they are built or decoded
(positive, finite, two decimal places, at most a trillion); ``decide`` enforces the business
rules (open once, act only on open accounts, no overdraft).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

import msgspec

from facta import Aggregate, Command, DomainError, Event, Personal

MAX_AMOUNT = Decimal(1_000_000_000_000)
MAX_OWNER_LENGTH = 200

# What the commands' JSON Schema says (OpenAPI), the same rules ``money`` and the commands'
# checks enforce: the API documents what it accepts. ("extra" is how Litestar reads extra
# JSON Schema keys from msgspec's Meta.)
Amount = Annotated[
    Decimal,
    msgspec.Meta(
        extra_json_schema={
            "extra": {"exclusive_minimum": 0, "maximum": int(MAX_AMOUNT), "multiple_of": 0.01}
        }
    ),
]
"""A positive amount of money, at most a trillion, in cents."""
Balance = Annotated[
    Decimal,
    msgspec.Meta(
        extra_json_schema={"extra": {"minimum": 0, "maximum": int(MAX_AMOUNT), "multiple_of": 0.01}}
    ),
]
"""An amount of money that may be zero."""
Owner = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=MAX_OWNER_LENGTH, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$"),
]
"""A name: 1 to 200 characters, not all white space, no NUL."""


_TENTH = Decimal("0.1")


def as_money(value: Decimal) -> Decimal:
    """``value`` written as the seed writes money: no trailing zeros, but at least one decimal
    place (``1300.0``, ``10.25``, ``5.0``). A sum keeps its operands' places (``10.25 + 0.75``
    is ``11.00``), so whatever renders a computed amount passes it through here."""
    return value.quantize(_TENTH) if value == value.to_integral_value() else value.normalize()


def money(value: Decimal, what: str, *, allow_zero: bool = False) -> Decimal:
    """``value`` checked (finite, in range, at most two decimal places) and written as the
    seed writes money (:func:`as_money`)."""
    try:
        if not value.is_finite():
            raise ValueError(f"{what} must be a finite number")
        normal = value.normalize()
        exponent = normal.as_tuple().exponent
        assert isinstance(exponent, int)
        if exponent < -2:
            raise ValueError(f"{what} must have at most two decimal places")
        if normal < 0 or (normal == 0 and not allow_zero):
            raise ValueError(f"{what} must be {'zero or more' if allow_zero else 'positive'}")
        if normal > MAX_AMOUNT:
            raise ValueError(f"{what} must be at most {MAX_AMOUNT}")
        return as_money(normal)
    except InvalidOperation:
        raise ValueError(f"{what} is not a usable number") from None


class OpenAccount(Command, frozen=True):
    owner: Owner
    initial_balance: Balance

    def __post_init__(self) -> None:
        if not self.owner.strip() or len(self.owner) > MAX_OWNER_LENGTH:
            raise ValueError(f"owner must be 1 to {MAX_OWNER_LENGTH} characters, not blank")
        money(self.initial_balance, "initial_balance", allow_zero=True)


class Deposit(Command, frozen=True):
    amount: Amount

    def __post_init__(self) -> None:
        money(self.amount, "amount")


class Withdraw(Command, frozen=True):
    amount: Amount

    def __post_init__(self) -> None:
        money(self.amount, "amount")


AccountCommand = OpenAccount | Deposit | Withdraw


class AccountOpened(Event, frozen=True):
    # The holder's name is personal data, its subject the account (the event's stream):
    # stored encrypted, and `facta forget account-ID` makes it read "[redacted]" for good.
    owner: Annotated[str, Personal()]
    initial_balance: Decimal


class MoneyDeposited(Event, frozen=True):
    amount: Decimal


class MoneyWithdrawn(Event, frozen=True):
    amount: Decimal


AccountEvent = AccountOpened | MoneyDeposited | MoneyWithdrawn


class AccountState(msgspec.Struct, frozen=True):
    opened: bool = False
    owner: str = ""
    balance: Decimal = Decimal("0.0")


class AccountError(DomainError):
    """A bank command broke a business rule."""


class Account(Aggregate[AccountState, AccountCommand, AccountEvent]):
    name = "account"
    initial = AccountState()
    snapshot_every = 100
    creation_commands = (OpenAccount,)

    def decide(self, state: AccountState, command: AccountCommand) -> list[AccountEvent]:
        match command:
            case OpenAccount(owner=owner, initial_balance=initial_balance):
                if state.opened:
                    raise AccountError("Account already open")
                return [
                    AccountOpened(owner, money(initial_balance, "initial_balance", allow_zero=True))
                ]
            case _ if not state.opened:
                raise AccountError("Account not open")
            case Deposit(amount=amount):
                return [MoneyDeposited(money(amount, "amount"))]
            case Withdraw(amount=amount):
                if amount > state.balance:
                    raise AccountError("Insufficient funds")
                return [MoneyWithdrawn(money(amount, "amount"))]
        raise AccountError(f"unknown command {type(command).__name__}")

    def evolve(self, state: AccountState, event: AccountEvent) -> AccountState:
        match event:
            case AccountOpened(owner=owner, initial_balance=initial_balance):
                return AccountState(True, owner, initial_balance)
            case MoneyDeposited(amount=amount):
                return AccountState(True, state.owner, state.balance + amount)
            case MoneyWithdrawn(amount=amount):
                return AccountState(True, state.owner, state.balance - amount)
        return state
