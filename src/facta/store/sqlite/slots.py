"""The SQLite engine's read-model rows: the columns of the slot catalog, how values are
written to index columns, and how rows read back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from facta.store.base import Position
from facta.store.documents import DocumentSpec
from facta.store.read_models import SlotRow

TYPES = {
    "text": "TEXT",
    "integer": "INTEGER",
    "real": "REAL",
    "boolean": "INTEGER",
    "numeric": "REAL",
}
SLOT_COLUMNS = (
    "name, slot, version, active, state, checkpoint_commit, checkpoint_sequence, checkpoint_at,"
    " handled, owner, lease_until, error, error_event_id, error_position, failed_at, part"
)


def mark(_: int) -> str:
    """SQLite's parameter mark."""
    return "?"


def adapt(_: str, value: Any) -> Any:
    """A value as SQLite stores it in an index column (Decimal as a float)."""
    if isinstance(value, Decimal):
        return float(value)
    return value


def slot_row(row: Sequence[Any]) -> SlotRow:
    """A catalog row as a SlotRow."""
    return SlotRow(
        row[0],
        row[1],
        row[2],
        bool(row[3]),
        row[4],
        Position(row[5], row[6]),
        *row[7:],
    )


def row_adapter(spec: DocumentSpec[Any]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]] | None:
    """Converts Decimal values of a stored row to float (None when no column needs it)."""
    decimals = [i + 2 for i, f in enumerate(spec.indexes) if spec.kinds[f] == "numeric"]
    if not decimals:
        return None

    def adapt(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i in decimals:
            values[i] = float(values[i])
        return tuple(values)

    return adapt
