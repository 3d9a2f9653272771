"""``facta events verify``: before a deploy, check that every stored event still decodes with
the code about to run (upcasters included) and that no stream's versions skip."""

from __future__ import annotations

from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from facta.cli._common import (
    BadSpec,
    StoreError,
    console,
    load_object,
    opened_store,
    run,
    store_option,
)
from facta.codec import Codec
from facta.domain import Aggregate
from facta.verification import VerificationReport, verify_events

DEFAULT_AGGREGATES = (
    "facta.examples.bank.domain:Account",
    "facta.examples.bank.transfers:Transfer",
)


def load_aggregate(spec: str) -> Aggregate[Any, Any, Any]:
    """The aggregate class named ``MODULE:CLASS``, instantiated."""
    kind = load_object(spec, "--aggregate")
    if not (isinstance(kind, type) and issubclass(kind, Aggregate)):
        raise BadSpec("--aggregate", spec, "it is not an Aggregate class")
    aggregate: Aggregate[Any, Any, Any] = kind()
    return aggregate


async def _verify(url: str, aggregates: tuple[str, ...]) -> VerificationReport:
    codec = Codec()
    for spec in aggregates:
        codec.register_aggregate(load_aggregate(spec))
    async with opened_store(url) as store:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.completed:,} events checked"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("verify", total=None)
            return await verify_events(store, codec, progress=lambda n: progress.advance(task, n))


@click.command()
@store_option
@click.option(
    "--aggregate",
    "aggregates",
    multiple=True,
    default=DEFAULT_AGGREGATES,
    show_default=True,
    metavar="MODULE:CLASS",
    help="An aggregate whose events (and upcasters) the code about to deploy knows; repeat it.",
)
def verify(store_url: str, aggregates: tuple[str, ...]) -> None:
    """Check that every stored event decodes and every stream's versions have no gaps."""
    report = run(_verify, store_url, aggregates)
    table = Table(title=f"{report.checked:,} events", title_justify="left")
    table.add_column("type", style="cyan")
    table.add_column("events", justify="right")
    table.add_column("result")
    for kind, count in sorted(report.by_type.items()):
        failure = report.failures.get(kind)
        if failure is not None:
            result = (
                f"[red]{report.failure_counts[kind]:,} fail[/]; first: {failure.stream_id}"
                f" v{failure.version} at {failure.position}: {failure.error}"
            )
        elif kind in report.deprecated:
            result = "[yellow]deprecated: skipped on read[/]"
        else:
            result = "[green]ok[/]"
        table.add_row(kind, f"{count:,}", result)
    console.print(table)
    for stream, (expected, found) in sorted(report.gaps.items())[:20]:
        console.print(f"[red]gap[/] in {stream}: version {found} where {expected} was due")
    if not report.ok:
        raise StoreError(
            f"{len(report.failures)} event type(s) do not decode, {len(report.gaps)} stream(s)"
            " have gaps"
        )
    console.print("[green]every event decodes and every stream is whole[/]")


command = verify
