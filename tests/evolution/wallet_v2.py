"""Version 2: FundsAdded is renamed MoneyDeposited and holds a Decimal amount; WalletOpened
gains a currency. Old events are upcast on read."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from facta import Aggregate, Command, Event
from facta.codec import Upcaster


class OpenWallet(Command, frozen=True):
    owner: str
    currency: str = "EUR"


class Deposit(Command, frozen=True):
    amount: Decimal


def opened_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": "EUR"}


def deposited_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {"amount": str(Decimal(data["cents"]) / 100)}


class WalletOpened(Event, frozen=True):
    schema_version: ClassVar[int] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: opened_v1_to_v2}
    owner: str
    currency: str


class MoneyDeposited(Event, frozen=True):  # stored as "FundsAdded", in cents, by version 1
    schema_version: ClassVar[int] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: deposited_v1_to_v2}
    renamed_from: ClassVar[tuple[str, ...]] = ("FundsAdded",)
    amount: Decimal


class WalletFrozen(Event, frozen=True):
    reason: str


class State(msgspec.Struct, frozen=True):
    owner: str = ""
    currency: str = ""
    balance: Decimal = Decimal(0)
    frozen: bool = False


class Wallet(Aggregate[State, OpenWallet | Deposit, WalletOpened | MoneyDeposited | WalletFrozen]):
    name = "wallet"
    initial = State()
    state_schema_version = 2

    def decide(
        self, state: State, command: OpenWallet | Deposit
    ) -> list[WalletOpened | MoneyDeposited | WalletFrozen]:
        match command:
            case OpenWallet(owner=owner, currency=currency):
                return [WalletOpened(owner, currency)]
            case Deposit(amount=amount):
                return [MoneyDeposited(amount)]

    def evolve(self, state: State, event: WalletOpened | MoneyDeposited | WalletFrozen) -> State:
        match event:
            case WalletOpened(owner=owner, currency=currency):
                return State(owner, currency)
            case MoneyDeposited(amount=amount):
                return State(state.owner, state.currency, state.balance + amount, state.frozen)
            case WalletFrozen():
                return State(state.owner, state.currency, state.balance, True)
