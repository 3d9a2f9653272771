"""``facta streams``: the streams in the store, with their event counts; its subcommands
(delete, truncate, retention, scavenge) are in :mod:`facta.cli.lifecycle`."""

from __future__ import annotations

from dataclasses import dataclass

import click
from rich.table import Table

from facta.cli._common import console, opened_store, progress_bar, run, store_option, timestamp
from facta.cli.lifecycle import STREAM_COMMANDS
from facta.store.base import START

PAGE = 5000


@dataclass
class StreamSummary:
    """What the log says about one stream."""

    events: int = 0
    version: int = 0
    last_recorded_at: float = 0.0


async def _streams(url: str, categories: tuple[str, ...], limit: int) -> None:
    async with opened_store(url) as store:
        head = await store.head()
        summaries: dict[str, StreamSummary] = {}
        position = START
        # The log is scanned in pages: the store protocol has no index of streams, and a
        # full scan is what an operator asking "what is in here" can afford, with progress.
        with progress_bar("scanning the log") as progress:
            task = progress.add_task("scan", total=head.sequence or None)
            while True:
                page = await store.read_all(
                    after=position, limit=PAGE, categories=list(categories) or None
                )
                for record in page:
                    summary = summaries.setdefault(record.stream_id, StreamSummary())
                    summary.events += 1
                    summary.version = max(summary.version, record.version)
                    summary.last_recorded_at = record.recorded_at
                if page:
                    position = page[-1].position
                    progress.update(task, completed=position.sequence)
                if len(page) < PAGE:
                    break
    if not summaries:
        console.print("no streams")
        return
    table = Table(title=f"{len(summaries)} streams", title_justify="left")
    table.add_column("stream")
    table.add_column("events", justify="right")
    table.add_column("version", justify="right")
    table.add_column("last event at")
    for stream_id in sorted(summaries)[:limit]:
        summary = summaries[stream_id]
        table.add_row(
            stream_id,
            str(summary.events),
            str(summary.version),
            timestamp(summary.last_recorded_at),
        )
    console.print(table)
    if len(summaries) > limit:
        console.print(f"… and {len(summaries) - limit} more (--limit)")


@click.group(invoke_without_command=True)
@store_option
@click.option("--category", "categories", multiple=True, help="Only streams of this category.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.pass_context
def streams(ctx: click.Context, store_url: str, categories: tuple[str, ...], limit: int) -> None:
    """List the streams with their event counts and versions; or delete, truncate one, or
    set and apply retention rules (facta streams COMMAND --help)."""
    if ctx.invoked_subcommand is None:
        run(_streams, store_url, categories, limit)


for _command in STREAM_COMMANDS:
    streams.add_command(_command)


command = streams
