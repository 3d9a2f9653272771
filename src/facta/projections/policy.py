"""Policy: a reaction to events that executes commands (a process manager or saga).

A runner runs policies like projections, from a checkpoint. Delivery is at least once (a
crash between a command and the checkpoint replays the event), so every command a policy
executes gets a command id derived from the causing event: executing it again is a no-op
that returns the first result. Correlation is carried over and causation is the event.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal, TypeVar

from facta.application import Application
from facta.domain import Aggregate, Command, DomainError, Event, type_name
from facta.errors import InvalidStreamId, WrongExpectedVersion
from facta.projections.errors import CommandRefused
from facta.projections.handler import OUTAGES, EventHandler
from facta.results import CommandResult, EventEnvelope, StateAt

S = TypeVar("S")
C = TypeVar("C", bound=Command)
E = TypeVar("E", bound=Event)

_POLICY_NAMESPACE = uuid.UUID("0c5f8f3e-2b7d-4d8e-9a8e-5a3c1d7e4b21")


class PolicyContext:
    """What a policy's handler acts through for one event."""

    def __init__(self, app: Application, policy: str, envelope: EventEnvelope[Event]) -> None:
        self.app = app
        self.policy = policy
        self.envelope = envelope
        self._counts: dict[str, int] = {}
        meta = envelope.recorded.meta
        self.correlation_id: str = meta.get("correlation_id") or envelope.recorded.event_id

    async def execute(
        self,
        aggregate: Aggregate[S, C, E],
        entity_id: str,
        command: C,
        *,
        step: str | None = None,
    ) -> CommandResult[S, E]:
        """Execute ``command`` once per causing event (and ``step``): a replay of the same
        event returns the first result and writes nothing. Without ``step``, the commands of
        one event to one stream are told apart by their order, so keep the handler
        deterministic. Raises CommandRefused when the target refuses the command (its
        aggregate's DomainError, or an invalid ``entity_id``), else what Application.execute
        raises."""
        try:
            stream = Application.stream_id(aggregate, entity_id)
        except InvalidStreamId as exc:
            raise CommandRefused(aggregate.name, entity_id, command, exc) from exc
        if step is None:
            count = self._counts[stream] = self._counts.get(stream, 0) + 1
            step = f"{type_name(type(command))}#{count}"
        recorded = self.envelope.recorded
        command_id = str(
            uuid.uuid5(_POLICY_NAMESPACE, f"{self.policy}\n{recorded.event_id}\n{stream}\n{step}")
        )
        try:
            return await self.app.execute(
                aggregate,
                entity_id,
                command,
                command_id=command_id,
                metadata={"correlation_id": self.correlation_id, "causation_id": recorded.event_id},
            )
        except DomainError as exc:
            raise CommandRefused(aggregate.name, entity_id, command, exc) from exc

    async def load(self, aggregate: Aggregate[S, Any, Any], entity_id: str) -> StateAt[S]:
        """The current state of one aggregate instance."""
        return await self.app.load(aggregate, entity_id)


class Policy(EventHandler):
    """A process manager: subclass it, set ``name`` and ``event_types``, write ``handle``.

    A command its target refuses (a domain error, an invalid id, an entity that does not
    exist) raises CommandRefused out of ``context.execute``: that is an outcome to handle
    (compensate, record the failure), never a reason for the policy to stop. Whatever else
    ``handle`` raises is retried ``retries`` times (at most 10) with back-off, whatever its
    type: a policy's commands meet the store's troubles under many names. Then an error of
    the ``transient_errors`` types (an outage, a conflict that outlasted the retries) is
    never parked — it is not the event's fault —: the runner tries again later from the
    checkpoint. Any other (a bug) has that one event parked in the dead-letter table
    (``ReadStore.dead_letters``) with ``on_error = "park"`` (the default), and the policy
    goes on with the next; ``"stop"`` stops the policy at it instead, as a projection stops.

    Guard each step with the state it needs (load it through the context): after a crash an
    event may be handled again, and only the commands are idempotent, not the decisions
    around them.
    """

    kind = "policy"
    on_error: ClassVar[Literal["stop", "park"]] = "park"
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (*OUTAGES, WrongExpectedVersion)

    async def handle(self, envelope: EventEnvelope[Event], context: PolicyContext) -> None:
        """React to one event. Raise to fail it (see ``on_error``)."""
        raise NotImplementedError
