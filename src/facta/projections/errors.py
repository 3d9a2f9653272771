"""Errors of the read side that callers can catch."""

from __future__ import annotations

from facta.errors import FactaError


class LeaseLost(FactaError):
    """This runner no longer holds the projection (another took it over, or it was switched
    away); the batch was rolled back and nothing of it was written."""

    def __init__(self, name: str, slot: int) -> None:
        self.name = name
        self.slot = slot
        super().__init__(f"projection {name!r} (slot {slot}) is no longer held by this runner")


class ProjectionNotFound(FactaError, LookupError):
    """No projection of that name is registered or stored."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no projection named {name!r}")
