"""Version 1 of a wallet domain, as first deployed: amounts in cents, a freeze event."""

from __future__ import annotations

import msgspec

from facta import Aggregate, Command, Event


class OpenWallet(Command, frozen=True):
    owner: str


class AddFunds(Command, frozen=True):
    cents: int


class FreezeWallet(Command, frozen=True):
    reason: str


class WalletOpened(Event, frozen=True):
    owner: str


class FundsAdded(Event, frozen=True):
    cents: int


class WalletFrozen(Event, frozen=True):
    reason: str


class State(msgspec.Struct, frozen=True):
    owner: str = ""
    cents: int = 0
    frozen: bool = False


class Wallet(
    Aggregate[State, OpenWallet | AddFunds | FreezeWallet, WalletOpened | FundsAdded | WalletFrozen]
):
    name = "wallet"
    initial = State()

    def decide(
        self, state: State, command: OpenWallet | AddFunds | FreezeWallet
    ) -> list[WalletOpened | FundsAdded | WalletFrozen]:
        match command:
            case OpenWallet(owner=owner):
                return [WalletOpened(owner)]
            case AddFunds(cents=cents):
                return [FundsAdded(cents)]
            case FreezeWallet(reason=reason):
                return [WalletFrozen(reason)]

    def evolve(self, state: State, event: WalletOpened | FundsAdded | WalletFrozen) -> State:
        match event:
            case WalletOpened(owner=owner):
                return State(owner)
            case FundsAdded(cents=cents):
                return State(state.owner, state.cents + cents, state.frozen)
            case WalletFrozen():
                return State(state.owner, state.cents, True)
