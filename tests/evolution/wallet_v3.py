"""Version 3: freezing is gone (WalletFrozen is deprecated and skipped on read) and
WalletOpened gains a tier: a chain v1 -> v2 -> v3 of upcasters."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from facta import Aggregate, Command, Event
from facta.codec import Upcaster
from tests.evolution.wallet_v2 import deposited_v1_to_v2, opened_v1_to_v2


class Deposit(Command, frozen=True):
    amount: Decimal


def opened_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "tier": "basic"}


class WalletOpened(Event, frozen=True):
    schema_version: ClassVar[int] = 3
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: opened_v1_to_v2, 2: opened_v2_to_v3}
    owner: str
    currency: str
    tier: str


class MoneyDeposited(Event, frozen=True):
    schema_version: ClassVar[int] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: deposited_v1_to_v2}
    renamed_from: ClassVar[tuple[str, ...]] = ("FundsAdded",)
    amount: Decimal


class State(msgspec.Struct, frozen=True):
    owner: str = ""
    tier: str = ""
    balance: Decimal = Decimal(0)


class Wallet(Aggregate[State, Deposit, WalletOpened | MoneyDeposited]):
    name = "wallet"
    initial = State()
    state_schema_version = 3
    deprecated_events = frozenset({"WalletFrozen"})

    def decide(self, state: State, command: Deposit) -> list[WalletOpened | MoneyDeposited]:
        return [MoneyDeposited(command.amount)]

    def evolve(self, state: State, event: WalletOpened | MoneyDeposited) -> State:
        match event:
            case WalletOpened(owner=owner, tier=tier):
                return State(owner, tier)
            case MoneyDeposited(amount=amount):
                return State(state.owner, state.tier, state.balance + amount)
