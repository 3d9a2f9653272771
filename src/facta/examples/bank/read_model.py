"""The ``accounts`` read model: one document per account, kept by a projection, and the
queries the service answers from it (never from the event log).

Run it asynchronously with a ProjectionRunner (``ProjectionRunner(store, [AccountsProjection()])``);
queries go through a ReadStore: ``Accounts(read_store).list(owner="Alice", min_balance=...)``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from facta import Event, EventEnvelope
from facta.examples.bank.domain import AccountOpened, MoneyDeposited, MoneyWithdrawn
from facta.projections import Page, Projection, ReadStore, Session


class AccountSummary(msgspec.Struct, frozen=True):
    """One account as the read side shows it."""

    account_id: str
    owner: str
    balance: Decimal
    opened_at: float
    updated_at: float
    version: int


class Totals(msgspec.Struct, frozen=True):
    """How many accounts match, and their balances summed."""

    accounts: int
    balance: Decimal


def _account_id(envelope: EventEnvelope[Event]) -> str:
    return envelope.recorded.stream_id.partition("-")[2]


class AccountsProjection(Projection[AccountSummary]):
    """Keeps one AccountSummary per account stream."""

    name = "accounts"
    version = 1
    event_types = (AccountOpened, MoneyDeposited, MoneyWithdrawn)
    document = AccountSummary
    indexes = ("owner", "balance")

    def key_of(self, envelope: EventEnvelope[Event]) -> str:
        return _account_id(envelope)

    async def handle(
        self, envelope: EventEnvelope[Event], session: Session[AccountSummary]
    ) -> None:
        key = _account_id(envelope)
        recorded = envelope.recorded
        match envelope.event:
            case AccountOpened(owner=owner, initial_balance=balance):
                session.put(
                    key,
                    AccountSummary(
                        key, owner, balance, recorded.recorded_at, recorded.recorded_at, 1
                    ),
                )
                return
            case MoneyDeposited(amount=amount):
                change = amount
            case MoneyWithdrawn(amount=amount):
                change = -amount
            case _:
                return
        current = await session.get(key)
        if current is None:
            raise LookupError(f"account {key!r} has no AccountOpened before {recorded.type}")
        session.put(
            key,
            msgspec.structs.replace(
                current,
                balance=current.balance + change,
                updated_at=recorded.recorded_at,
                version=recorded.version,
            ),
        )


SortField = Literal["account_id", "owner", "balance"]


class Accounts:
    """Queries on the accounts read model."""

    def __init__(self, read_store: ReadStore) -> None:
        self.documents = read_store.documents(AccountsProjection)

    async def get(self, account_id: str) -> AccountSummary | None:
        """One account, or None."""
        return await self.documents.get(account_id)

    async def list(
        self,
        *,
        owner: str | None = None,
        min_balance: Decimal | None = None,
        sort: SortField = "account_id",
        descending: bool = False,
        after: str | None = None,
        limit: int = 50,
    ) -> Page[AccountSummary]:
        """Accounts filtered by owner and by a minimum balance, sorted, one page at a time
        (pass ``Page.next`` back as ``after``). Raises ValueError for a bad limit or cursor."""
        return await self.documents.query(
            _filters(owner, min_balance),
            order_by="key" if sort == "account_id" else sort,
            descending=descending,
            after=after,
            limit=limit,
        )

    async def totals(
        self, *, owner: str | None = None, min_balance: Decimal | None = None
    ) -> Totals:
        """The number of matching accounts and their total balance."""
        filters = _filters(owner, min_balance)
        return Totals(
            await self.documents.count(filters), await self.documents.sum("balance", filters)
        )


def _filters(owner: str | None, min_balance: Decimal | None) -> list[tuple[str, str, object]]:
    filters: list[tuple[str, str, object]] = []
    if owner is not None:
        filters.append(("owner", "=", owner))
    if min_balance is not None:
        filters.append(("balance", ">=", min_balance))
    return filters
