"""``facta events``: look at one stream (``show``) or follow the global log live (``tail``)."""

from __future__ import annotations

import click
import msgspec
from rich.markup import escape
from rich.table import Table

from facta.cli._common import StoreError, console, opened_store, run, store_option, timestamp
from facta.store.base import START, Position, RecordedEvent


def _data(record: RecordedEvent) -> str:
    # Escaped: stored data is anyone's text, and "[/x]" in it would be rich markup.
    return escape(record.data.decode("utf-8", "replace"))


class EventLine(msgspec.Struct):
    """One event as ``--json`` prints it, one object per line: the same object, key for key,
    as in the HTTP feed (``GET /events``), ``data`` and ``metadata`` the stored JSON."""

    position: str
    stream_id: str
    version: int
    type: str
    schema_version: int
    event_id: str
    recorded_at: str  # ISO 8601 UTC, to the microsecond (as the HTTP API writes it)
    data: msgspec.Raw
    metadata: msgspec.Raw
    tags: tuple[str, ...] = ()


def json_line(record: RecordedEvent) -> str:
    """``record`` as its :class:`EventLine` JSON."""
    line = EventLine(
        str(record.position),
        record.stream_id,
        record.version,
        record.type,
        record.schema_version,
        record.event_id,
        record.recorded_datetime.isoformat().replace("+00:00", "Z"),
        msgspec.Raw(record.data),
        msgspec.Raw(record.metadata),
        record.tags,
    )
    return msgspec.json.encode(line).decode()


async def _show(url: str, stream_id: str, from_version: int, limit: int, as_json: bool) -> None:
    async with opened_store(url) as store:
        records = await store.read_stream(stream_id, from_version=from_version, limit=limit)
        if not records and await store.stream_version(stream_id) == 0:
            raise StoreError(f"stream {stream_id!r} has no events")
    if as_json:
        for record in records:
            click.echo(json_line(record))
        return
    table = Table(title=stream_id, title_justify="left")
    table.add_column("version", justify="right")
    table.add_column("position", justify="right")
    table.add_column("recorded at", no_wrap=True, min_width=24)
    table.add_column("type", style="cyan")
    table.add_column("data", overflow="fold")
    for record in records:
        table.add_row(
            str(record.version),
            str(record.position),
            timestamp(record.recorded_at),
            escape(record.type),
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
                click.echo(json_line(record))
            else:
                console.print(
                    f"[dim]{record.position!s:>8}[/] {timestamp(record.recorded_at)}"
                    f" [bold]{record.stream_id}[/]@{record.version} [cyan]{escape(record.type)}[/]"
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
@click.option(
    "--json", "as_json", is_flag=True, help="One event per line, as the HTTP feed's JSON object."
)
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
@click.option(
    "--json", "as_json", is_flag=True, help="One event per line, as the HTTP feed's JSON object."
)
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
