"""The PostgreSQL engine's read-model rows: the columns of the slot catalog, how values are
written to index columns, and how rows read back."""

from __future__ import annotations

from typing import Any

from facta.store.base import Position
from facta.store.read_models import SlotRow

TYPES = {
    "text": "text",
    "integer": "bigint",
    "real": "double precision",
    "boolean": "boolean",
    "numeric": "numeric",
}
SLOT_COLUMNS = (
    "name, slot, version, active, state, checkpoint_commit, checkpoint_sequence, checkpoint_at,"
    " handled, owner, lease_until, error, error_event_id, error_position, failed_at, part"
)


def mark(n: int) -> str:
    """PostgreSQL's n-th parameter."""
    return f"${n}"


def adapt(_: str, value: Any) -> Any:
    """A value as PostgreSQL takes it in an index column (as it is)."""
    return value


def slot_row(row: Any) -> SlotRow:
    """A catalog row as a SlotRow."""
    return SlotRow(row[0], row[1], row[2], bool(row[3]), row[4], Position(row[5], row[6]), *row[7:])
