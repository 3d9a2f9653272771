"""Money transfers between two accounts: a ``transfer`` aggregate and the saga that moves
the money, with compensation when the credit side fails.

A transfer is requested, then the saga (a policy, run by a ProjectionRunner) withdraws from
the source, deposits to the target, and records each outcome on the transfer. When the
deposit is refused (the target account does not exist, or its id is not a valid one), the
transfer records the failure first and the saga then refunds the source. A refused command
is an outcome, never a reason for the saga to stop: the request may come from an event
written before the API checked ids, or by another client. Every step's command id derives
from the event that caused it, so a replay after a crash repeats nothing; each step checks
the transfer's state first, so a decision once recorded is never taken differently.

    requested --debit ok--> debited --credit ok--> completed
        |                       |
        +--debit rejected--> rejected                (nothing moved)
                                +--credit rejected--> refunding --refund--> refunded
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Literal

import msgspec

from facta import Aggregate, Command, DomainError, EntityId, Event, EventEnvelope, check_entity_id
from facta.examples.bank.domain import Account, AccountCommand, Amount, Deposit, Withdraw, money
from facta.projections import CommandRefused, Policy, PolicyContext

Status = Literal["none", "requested", "debited", "rejected", "completed", "refunding", "refunded"]


class RequestTransfer(Command, frozen=True):
    source: EntityId
    target: EntityId
    amount: Amount

    def __post_init__(self) -> None:
        money(self.amount, "amount")
        check_entity_id(self.source, "source")
        check_entity_id(self.target, "target")


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
    creation_commands = (RequestTransfer,)

    def decide(self, state: TransferState, command: TransferCommand) -> list[TransferEvent]:
        if isinstance(command, RequestTransfer):
            if state.status != "none":
                raise TransferError("Transfer already requested")
            # A business rule (400), not a malformed request: the JSON Schema of the body
            # cannot say that two fields differ.
            if command.source == command.target:
                raise TransferError("source and target must be different accounts")
            amount = money(command.amount, "amount")  # recorded as the seed writes money
            return [TransferRequested(command.source, command.target, amount)]
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
    """Moves the money of requested transfers, and refunds when the credit side fails.

    A step an account refuses (no such account, not enough money, an id that is not one, an
    amount that is not money) is recorded on the transfer: rejected before the debit (a
    target that is no account id is refused then too), credit failed (then refunded) after.
    """

    name = "transfer_saga"
    event_types = (TransferRequested, TransferDebited, TransferCreditFailed)

    async def handle(self, envelope: EventEnvelope[Event], context: PolicyContext) -> None:
        transfer_id = envelope.recorded.stream_id.partition("-")[2]
        state = (await context.load(transfer, transfer_id)).state
        match envelope.event:
            case TransferRequested() if state.status == "requested":
                # A target that is no account id at all can be told now: move nothing.
                refused = _invalid_id("target", state.target) or await _attempt(
                    context, "source", state.source, lambda: Withdraw(state.amount)
                )
                if refused is not None:
                    await context.execute(transfer, transfer_id, RejectTransfer(refused))
                    return
                await context.execute(transfer, transfer_id, RecordDebit())
            case TransferDebited() if state.status == "debited":
                refused = await _attempt(
                    context, "target", state.target, lambda: Deposit(state.amount)
                )
                if refused is not None:
                    await context.execute(transfer, transfer_id, RecordCreditFailure(refused))
                    return
                await context.execute(transfer, transfer_id, RecordCredit())
            case TransferCreditFailed() if state.status == "refunding":
                # The source took the withdrawal, so it takes the deposit back; should it
                # refuse all the same, the event is parked for an operator (money is owed).
                await context.execute(account, state.source, Deposit(state.amount))
                await context.execute(transfer, transfer_id, RecordRefund())
            case _:
                pass  # handled before (a replay): the transfer has moved on


def _invalid_id(side: str, account_id: str) -> str | None:
    try:
        check_entity_id(account_id, side)
    except ValueError as exc:
        return str(exc)
    return None


async def _attempt(
    context: PolicyContext, side: str, account_id: str, command: Callable[[], AccountCommand]
) -> str | None:
    """Execute ``command()`` on account ``account_id``: None when done, else why it was
    refused. A request written before the API checked it, or by another client, may name an
    account that is no id or an amount that is no money: those are refusals too."""
    refused = _invalid_id(side, account_id)
    if refused is not None:
        return refused
    try:
        made = command()
    except ValueError as exc:
        return str(exc)
    try:
        await context.execute(account, account_id, made)
    except CommandRefused as exc:
        return str(exc)
    return None
