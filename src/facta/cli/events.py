"""``facta events``: look at one stream (``show``) or follow the global log live (``tail``)."""

from __future__ import annotations

import click
import msgspec
from rich.table import Table

from facta.cli._common import StoreError, console, opened_store, run, store_option, timestamp
from facta.store.base import START, Position, RecordedEvent


def _data(record: RecordedEvent) -> str:
    return record.data.decode("utf-8", "replace")


class _Line(msgspec.Struct):
    position: str
    stream_id: str
    version: int
    type: str
    recorded_at: str
    data: msgspec.Raw


def _line(record: RecordedEvent) -> str:
    line = _Line(
        str(record.position),
        record.stream_id,
        record.version,
        record.type,
        timestamp(record.recorded_at),
        msgspec.Raw(record.data),
    )
    return msgspec.json.encode(line).decode()


async def _show(url: str, stream_id: str, from_version: int, limit: int, as_json: bool) -> None:
    async with opened_store(url) as store:
        records = await store.read_stream(stream_id, from_version=from_version, limit=limit)
        if not records and await store.stream_version(stream_id) == 0:
            raise StoreError(f"stream {stream_id!r} has no events")
    if as_json:
        for record in records:
            click.echo(_data(record))
        return
    table = Table(title=stream_id, title_justify="left")
    table.add_column("version", justify="right")
    table.add_column("position", justify="right")
    table.add_column("recorded at")
    table.add_column("type", style="cyan")
    table.add_column("data", overflow="fold")
    for record in records:
        table.add_row(
            str(record.version),
            str(record.position),
            timestamp(record.recorded_at),
            record.type,
            _data(record),
        )
    console.print(table)
    if len(records) == limit:
        console.print(f"more from version {records[-1].version + 1} (--from-version)")


async def _tail(
    url: str,
    after: str | None,
    categories: tuple[str, ...],
    types: tuple[str, ...],
    count: int | None,
    as_json: bool,
) -> None:
    async with opened_store(url) as store:
        if after is None:
            start = await store.head()
        else:
            try:
                start = START if after == "start" else Position.parse(after)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--after") from None
        seen = 0
        async for record in store.subscribe(
            after=start, categories=list(categories) or None, types=list(types) or None
        ):
            if as_json:
                click.echo(_line(record))
            else:
                console.print(
                    f"[dim]{record.position:>8}[/] {timestamp(record.recorded_at)}"
                    f" [bold]{record.stream_id}[/]@{record.version} [cyan]{record.type}[/]"
                    f" {_data(record)}",
                    markup=True,
                    soft_wrap=True,
                )
            seen += 1
            if count is not None and seen >= count:
                return


@click.group()
def events() -> None:
    """Look at events: one stream's, or the whole log live."""


@events.command()
@store_option
@click.argument("stream_id", metavar="STREAM")
@click.option("--from-version", default=1, show_default=True, type=click.IntRange(1))
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="One event's data per line, as JSON.")
def show(store_url: str, stream_id: str, from_version: int, limit: int, as_json: bool) -> None:
    """Show the events of STREAM (e.g. account-acc-001), oldest first."""
    run(_show, store_url, stream_id, from_version, limit, as_json)


@events.command()
@store_option
@click.option(
    "--after",
    metavar="POSITION",
    help="Start after this log position ('start' for the beginning; default: from now on).",
)
@click.option("--category", "categories", multiple=True, help="Only this stream category.")
@click.option("--type", "types", multiple=True, help="Only this event type.")
@click.option("--count", type=click.IntRange(1), help="Stop after this many events.")
@click.option("--json", "as_json", is_flag=True, help="One event per line, as JSON.")
def tail(
    store_url: str,
    after: str | None,
    categories: tuple[str, ...],
    types: tuple[str, ...],
    count: int | None,
    as_json: bool,
) -> None:
    """Follow the global event log live (Ctrl-C to stop)."""
    run(_tail, store_url, after, categories, types, count, as_json)


command = events
