"""Money transfers between two accounts: a ``transfer`` aggregate and the saga that moves
the money, with compensation when the credit side fails.

A transfer is requested, then the saga (a policy, run by a ProjectionRunner) withdraws from
the source, deposits to the target, and records each outcome on the transfer. When the
deposit is rejected (the target account is not open), the transfer records the failure
first and the saga then refunds the source. Every step's command id derives from the event
that caused it, so a replay after a crash repeats nothing; each step checks the transfer's
state first, so a decision once recorded is never taken differently.

    requested --debit ok--> debited --credit ok--> completed
        |                       |
        +--debit rejected--> rejected                (nothing moved)
                                +--credit rejected--> refunding --refund--> refunded
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from facta import Aggregate, Command, DomainError, Event, EventEnvelope
from facta.examples.bank.domain import Account, AccountError, Amount, Deposit, Withdraw, money
from facta.projections import Policy, PolicyContext

Status = Literal["none", "requested", "debited", "rejected", "completed", "refunding", "refunded"]


AccountId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:@+=~-]{1,200}$")]
"""An account's id, as the accounts' URLs allow it."""


class RequestTransfer(Command, frozen=True):
    source: AccountId
    target: AccountId
    amount: Amount

    def __post_init__(self) -> None:
        money(self.amount, "amount")
        if not self.source or not self.target:
            raise ValueError("source and target accounts are required")


class RecordDebit(Command, frozen=True):
    pass


class RejectTransfer(Command, frozen=True):
    reason: str


class RecordCredit(Command, frozen=True):
    pass


class RecordCreditFailure(Command, frozen=True):
    reason: str


class RecordRefund(Command, frozen=True):
    pass


TransferCommand = (
    RequestTransfer
    | RecordDebit
    | RejectTransfer
    | RecordCredit
    | RecordCreditFailure
    | RecordRefund
)


class TransferRequested(Event, frozen=True):
    source: str
    target: str
    amount: Decimal


class TransferDebited(Event, frozen=True):
    pass


class TransferRejected(Event, frozen=True):
    reason: str


class TransferCompleted(Event, frozen=True):
    pass


class TransferCreditFailed(Event, frozen=True):
    reason: str


class TransferRefunded(Event, frozen=True):
    pass


TransferEvent = (
    TransferRequested
    | TransferDebited
    | TransferRejected
    | TransferCompleted
    | TransferCreditFailed
    | TransferRefunded
)


class TransferState(msgspec.Struct, frozen=True):
    status: Status = "none"
    source: str = ""
    target: str = ""
    amount: Decimal = Decimal("0.0")
    reason: str | None = None


class TransferError(DomainError):
    """A transfer command does not fit the transfer's state."""


_NEXT: dict[type[Command], tuple[Status, Status]] = {
    RecordDebit: ("requested", "debited"),
    RejectTransfer: ("requested", "rejected"),
    RecordCredit: ("debited", "completed"),
    RecordCreditFailure: ("debited", "refunding"),
    RecordRefund: ("refunding", "refunded"),
}


class Transfer(Aggregate[TransferState, TransferCommand, TransferEvent]):
    name = "transfer"
    initial = TransferState()

    def decide(self, state: TransferState, command: TransferCommand) -> list[TransferEvent]:
        if isinstance(command, RequestTransfer):
            if state.status != "none":
                raise TransferError("Transfer already requested")
            # A business rule (400), not a malformed request: the JSON Schema of the body
            # cannot say that two fields differ.
            if command.source == command.target:
                raise TransferError("source and target must be different accounts")
            return [TransferRequested(command.source, command.target, command.amount)]
        before, _ = _NEXT[type(command)]
        if state.status != before:
            raise TransferError(f"Transfer is {state.status}, not {before}")
        match command:
            case RecordDebit():
                return [TransferDebited()]
            case RejectTransfer(reason=reason):
                return [TransferRejected(reason)]
            case RecordCredit():
                return [TransferCompleted()]
            case RecordCreditFailure(reason=reason):
                return [TransferCreditFailed(reason)]
            case RecordRefund():
                return [TransferRefunded()]
        raise TransferError(f"unknown command {type(command).__name__}")

    def evolve(self, state: TransferState, event: TransferEvent) -> TransferState:
        match event:
            case TransferRequested(source=source, target=target, amount=amount):
                return TransferState("requested", source, target, amount)
            case TransferDebited():
                return msgspec.structs.replace(state, status="debited")
            case TransferRejected(reason=reason):
                return msgspec.structs.replace(state, status="rejected", reason=reason)
            case TransferCompleted():
                return msgspec.structs.replace(state, status="completed")
            case TransferCreditFailed(reason=reason):
                return msgspec.structs.replace(state, status="refunding", reason=reason)
            case TransferRefunded():
                return msgspec.structs.replace(state, status="refunded")
        return state


account = Account()
transfer = Transfer()


class TransferSaga(Policy):
    """Moves the money of requested transfers, and refunds when the credit side fails."""

    name = "transfer_saga"
    event_types = (TransferRequested, TransferDebited, TransferCreditFailed)

    async def handle(self, envelope: EventEnvelope[Event], context: PolicyContext) -> None:
        transfer_id = envelope.recorded.stream_id.partition("-")[2]
        state = (await context.load(transfer, transfer_id)).state
        match envelope.event:
            case TransferRequested() if state.status == "requested":
                try:
                    await context.execute(account, state.source, Withdraw(state.amount))
                except AccountError as exc:
                    await context.execute(transfer, transfer_id, RejectTransfer(str(exc)))
                    return
                await context.execute(transfer, transfer_id, RecordDebit())
            case TransferDebited() if state.status == "debited":
                try:
                    await context.execute(account, state.target, Deposit(state.amount))
                except AccountError as exc:
                    await context.execute(transfer, transfer_id, RecordCreditFailure(str(exc)))
                    return
                await context.execute(transfer, transfer_id, RecordCredit())
            case TransferCreditFailed() if state.status == "refunding":
                await context.execute(account, state.source, Deposit(state.amount))
                await context.execute(transfer, transfer_id, RecordRefund())
            case _:
                pass  # handled before (a replay): the transfer has moved on
