"""How the bank's API shows an account and a transfer, whatever serves it (Litestar or FastAPI)."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from facta.examples.bank.domain import AccountState, as_money
from facta.examples.bank.transfers import TransferState


class AccountView(msgspec.Struct):
    """An account as the API shows it (the seed's shape)."""

    id: str
    owner: str
    balance: Decimal
    version: int

    def __post_init__(self) -> None:
        self.balance = as_money(self.balance)  # 1300.0 and 10.25 however it was computed


def account_view(entity_id: str, version: int, state: AccountState) -> AccountView:
    """The API's view of an account's state at a version."""
    return AccountView(entity_id, state.owner, state.balance, version)


class TransferView(msgspec.Struct):
    """A transfer as the API shows it: where the saga has got to."""

    id: str
    status: str
    source: str
    target: str
    amount: Decimal
    reason: str | None
    version: int

    def __post_init__(self) -> None:
        self.amount = as_money(self.amount)  # 1300.0 and 10.25 however it was computed


def transfer_view(entity_id: str, version: int, state: TransferState) -> TransferView:
    """The API's view of a transfer's state at a version."""
    return TransferView(
        entity_id, state.status, state.source, state.target, state.amount, state.reason, version
    )


__all__ = ["AccountView", "TransferView", "account_view", "transfer_view"]
