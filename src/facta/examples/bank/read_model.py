"""The bank's read models, and the queries the service answers from them (never from the
event log):

- ``accounts``: one document per account. The service keeps it inline (in each append's
  transaction); it runs asynchronously too (``ProjectionRunner(store, [AccountsProjection()])``).
- ``transfers``: one document per transfer, where the saga has got to. Kept asynchronously,
  by the service's runner or ``facta projections run``, so it may lag a transfer's last step
  by a moment; ``facta projections rebuild transfers`` builds it again from the log.

Queries go through a ReadStore: ``Accounts(read_store).list(owner="Alice", min_balance=...)``,
``Transfers(read_store).list(status="completed")``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from facta import REDACTED, Event, EventEnvelope, StreamDeleted, SubjectForgotten
from facta.examples.bank.domain import AccountOpened, MoneyDeposited, MoneyWithdrawn
from facta.examples.bank.transfers import (
    TransferCompleted,
    TransferCreditFailed,
    TransferDebited,
    TransferRefunded,
    TransferRejected,
    TransferRequested,
)
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


def _entity_id(envelope: EventEnvelope[Event]) -> str:
    # The id part of the stream id: "account-acc-1" is account "acc-1".
    return envelope.recorded.stream_id.partition("-")[2]


def _account_of(envelope: EventEnvelope[Event]) -> str:
    # An account's events, or the forgetting of an account (its subject is its stream).
    match envelope.event:
        case SubjectForgotten(subject=subject):
            return subject.partition("-")[2]
    return _entity_id(envelope)


class AccountsProjection(Projection[AccountSummary]):
    """Keeps one AccountSummary per account stream."""

    name = "accounts"
    version = 1
    event_types = (AccountOpened, MoneyDeposited, MoneyWithdrawn, SubjectForgotten, StreamDeleted)
    document = AccountSummary
    indexes = ("owner", "balance")

    def key_of(self, envelope: EventEnvelope[Event]) -> str:
        return _account_of(envelope)

    async def handle(
        self, envelope: EventEnvelope[Event], session: Session[AccountSummary]
    ) -> None:
        key = _account_of(envelope)
        recorded = envelope.recorded
        match envelope.event:
            case StreamDeleted():
                session.delete(key)  # a deleted account is no longer listed
                return
            case SubjectForgotten(subject=subject):
                # The holder's name is personal: forgetting the account redacts it here too.
                forgotten = await session.get(key) if subject.startswith("account-") else None
                if forgotten is not None:
                    session.put(key, msgspec.structs.replace(forgotten, owner=REDACTED))
                return
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


class TransferSummary(msgspec.Struct, frozen=True):
    """One transfer as the read side shows it: its request and where the saga has got to
    (``status`` as the transfer aggregate names it; ``reason`` why it was rejected or
    refunded)."""

    transfer_id: str
    source: str
    target: str
    amount: Decimal
    status: str
    reason: str | None
    requested_at: float
    updated_at: float
    version: int


class TransfersProjection(Projection[TransferSummary]):
    """Keeps one TransferSummary per transfer stream (asynchronously: run by a runner)."""

    name = "transfers"
    version = 1
    event_types = (
        TransferRequested,
        TransferDebited,
        TransferRejected,
        TransferCompleted,
        TransferCreditFailed,
        TransferRefunded,
    )
    document = TransferSummary
    indexes = ("source", "target", "status")

    def key_of(self, envelope: EventEnvelope[Event]) -> str:
        return _entity_id(envelope)

    async def handle(
        self, envelope: EventEnvelope[Event], session: Session[TransferSummary]
    ) -> None:
        key = _entity_id(envelope)
        recorded = envelope.recorded
        reason: str | None = None
        match envelope.event:
            case TransferRequested(source=source, target=target, amount=amount):
                at = recorded.recorded_at
                summary = TransferSummary(key, source, target, amount, "requested", None, at, at, 1)
                session.put(key, summary)
                return
            case TransferDebited():
                status = "debited"
            case TransferRejected(reason=rejected):
                status, reason = "rejected", rejected
            case TransferCompleted():
                status = "completed"
            case TransferCreditFailed(reason=failed):
                status, reason = "refunding", failed
            case TransferRefunded():
                status = "refunded"
            case _:
                return
        current = await session.get(key)
        if current is None:
            raise LookupError(f"transfer {key!r} has no TransferRequested before {recorded.type}")
        session.put(
            key,
            msgspec.structs.replace(
                current,
                status=status,
                reason=reason or current.reason,
                updated_at=recorded.recorded_at,
                version=recorded.version,
            ),
        )


class Transfers:
    """Queries on the transfers read model."""

    def __init__(self, read_store: ReadStore) -> None:
        self.documents = read_store.documents(TransfersProjection)

    async def get(self, transfer_id: str) -> TransferSummary | None:
        """One transfer, or None (also while the runner has not reached it yet)."""
        return await self.documents.get(transfer_id)

    async def list(
        self,
        *,
        source: str | None = None,
        target: str | None = None,
        status: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> Page[TransferSummary]:
        """Transfers from an account, to an account, in a status, by transfer id, one page
        at a time (pass ``Page.next`` back as ``after``). Raises ValueError for a bad limit
        or cursor."""
        filters = {
            name: value
            for name, value in (("source", source), ("target", target), ("status", status))
            if value is not None
        }
        return await self.documents.query(filters, after=after, limit=limit)
