"""How ``facta projections status`` shows the read side: one table row per projection slot
(and partition), and a line for each thing an operator must act on."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from facta.projections import ProjectionStatus


def status_table(statuses: Sequence[ProjectionStatus]) -> Table:
    table = Table(title=f"{len(statuses)} projection slots", title_justify="left")
    partitioned = any(s.partitions > 1 for s in statuses)
    for column, justify in [
        ("projection", "left"),
        ("version", "right"),
        ("slot", "right"),
        *([("partition", "right")] if partitioned else []),
        ("state", "left"),
        ("position", "right"),
        ("head", "right"),
        ("lag (events)", "right"),
        ("lag (s)", "right"),
        ("handled", "right"),
        ("owner", "left"),
        ("error", "left"),
        ("parked", "right"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    colours = {
        "running": "green",
        "failed": "red",
        "rebuilding": "yellow",
        "paused": "yellow",
        "stopped": "dim",
    }
    for s in statuses:
        state = s.state if s.active else f"{s.state} (not active)"
        error = "" if s.error is None else f"at {s.error_position}: {s.error.splitlines()[0]}"
        table.add_row(
            s.name,
            str(s.version),
            str(s.slot),
            *([f"{s.partition} of {s.partitions}"] if partitioned else []),
            f"[{colours.get(s.state, 'cyan')}]{state}[/]",
            str(s.position),
            str(s.head),
            str(s.lag_events),
            f"{s.lag_seconds:.3f}",
            str(s.handled),
            s.owner or "",
            error,
            f"[red]{s.parked}[/]" if s.parked else "0",
        )
    return table


def trouble_lines(statuses: Sequence[ProjectionStatus]) -> list[str]:
    """What an operator must act on: failed projections, parked events."""
    lines = []
    for s in statuses:
        where = f"slot {s.slot}" if s.partitions == 1 else f"slot {s.slot}, partition {s.partition}"
        if s.state == "failed":
            lines.append(
                f"{s.name} ({where}) is stopped at {s.error_position}: fix the cause,"
                f" then `facta projections restart {s.name}`"
            )
        if s.parked and s.partition == 0:  # counted per slot
            lines.append(
                f"{s.name} (slot {s.slot}) parked {s.parked} event(s):"
                f" `facta projections parked {s.name}` lists them"
            )
    return lines
