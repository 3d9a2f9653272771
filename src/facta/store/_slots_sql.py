"""The statement that commits a projection batch's checkpoint, for the SQL engines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facta.store.base import Position
from facta.store.read_models import Batch, SlotRow


def advance_checkpoint(table: str, mark: Callable[[int], str]) -> str:
    """Move a slot's checkpoint (and record a failure, if the batch stops the projection),
    only while the runner holds the slot's lease and the checkpoint is still where the batch
    started: a runner that lost the slot, or a second commit of one batch, changes no row.
    Parameters: :func:`advance_values`."""
    m = [mark(n) for n in range(17)]
    return (
        f"UPDATE {table} SET checkpoint_commit = {m[1]}, checkpoint_sequence = {m[2]},"
        f" checkpoint_at = coalesce({m[3]}, checkpoint_at), handled = handled + {m[4]},"
        f" lease_until = {m[5]},"
        f" state = CASE WHEN {m[6]} THEN 'failed' ELSE state END,"
        f" owner = CASE WHEN {m[6]} THEN NULL ELSE owner END,"
        f" error_event_id = {m[7]}, error_position = {m[8]}, error = {m[9]},"
        f" failed_at = {m[10]}"
        f" WHERE name = {m[11]} AND slot = {m[12]} AND part = {m[16]}"
        f" AND owner = {m[13]} AND state <> 'failed'"
        f" AND checkpoint_commit = {m[14]} AND checkpoint_sequence = {m[15]}"
    )


def advance_values(slot: SlotRow, batch: Batch, lease_until: float, now: float) -> tuple[Any, ...]:
    """The parameters of :func:`advance_checkpoint` for committing ``batch`` on ``slot``."""
    failure, start = batch.failure, slot.position
    position: Position = batch.position
    return (
        position.commit,
        position.sequence,
        batch.checkpoint_at,
        batch.handled,
        lease_until,
        failure is not None,
        *(failure or (None, None, None)),
        now if failure else None,
        slot.name,
        slot.slot,
        slot.owner,
        start.commit,
        start.sequence,
        slot.partition,
    )
