"""What the read side reports about itself: projection status, dead letters, rebuild progress."""

from __future__ import annotations

from typing import Literal

import msgspec

from facta.store.base import Position
from facta.store.read_models import DeadLetter

__all__ = ["DeadLetter", "ProjectionStatus", "RebuildProgress", "State"]

State = Literal["running", "stopped", "failed", "rebuilding", "inline", "paused"]


class ProjectionStatus(msgspec.Struct, frozen=True):
    """Where one projection (one storage slot of it) stands.

    ``state``: ``running`` (a runner holds it and follows the log), ``rebuilding`` (a new
    version or a manual rebuild building beside the active one), ``stopped`` (nobody holds
    it), ``failed`` (stopped at ``error_position`` by ``error``; restart it after a fix),
    ``inline`` (written inside appends), ``paused`` (by an operator: no runner takes it
    until it is resumed). ``lag_events`` counts log positions between the
    checkpoint and the head (exact on SQLite and in memory, an estimate on PostgreSQL);
    ``lag_seconds`` is the age of the oldest event not yet handled. ``parked``: events of
    this slot in the dead-letter table (``ReadStore.dead_letters``), waiting for an operator.
    A partitioned projection has one status per partition of each slot: ``partition`` of
    ``partitions``, each with its own position, owner and state (``parked`` counts the
    slot's, in each).
    """

    name: str
    version: int
    slot: int
    active: bool
    state: State
    position: Position
    head: Position
    lag_events: int
    lag_seconds: float
    handled: int
    owner: str | None
    error: str | None = None
    error_event_id: str | None = None
    error_position: str | None = None
    failed_at: float | None = None
    parked: int = 0
    partition: int = 0
    partitions: int = 1


class RebuildProgress(msgspec.Struct, frozen=True):
    """How far a rebuild is: events handled so far, the position reached, the log's head
    when the rebuild started (``head.sequence`` is a fair total for a progress bar)."""

    name: str
    events: int
    position: Position
    head: Position
    done: bool = False
