"""Errors of the read side that callers can catch."""

from __future__ import annotations

from typing import Any

from facta.errors import FactaError, LeaseLost

__all__ = ["CommandRefused", "LeaseLost", "ProjectionNotFound"]


class ProjectionNotFound(FactaError, LookupError):
    """No projection of that name is registered or stored."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no projection named {name!r}")


class CommandRefused(FactaError):
    """A command a policy executed was refused by its target, and nothing was written: the
    aggregate rejected it (its DomainError) or the entity id is not a valid one
    (InvalidStreamId) — a transfer to an account that does not exist, or to ``"bad id"``.

    An outcome for the policy to handle (compensate, record the failure), never a fault of
    the policy: ``PolicyContext.execute`` raises it for every such refusal, so one ``except``
    covers them all. ``error`` is the refusal itself (also the ``__cause__``), and the
    message is its message; ``aggregate``, ``entity_id`` and ``command`` say what was refused.
    """

    def __init__(self, aggregate: str, entity_id: str, command: Any, error: Exception) -> None:
        self.aggregate = aggregate
        self.entity_id = entity_id
        self.command = command
        self.error = error
        super().__init__(str(error))
