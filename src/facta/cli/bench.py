"""``facta bench``: run the benchmark suite. A stub until the benchmarks fill it in."""

from __future__ import annotations

import click

from facta.cli._common import store_option
from facta.cli._stub import not_yet


@click.command()
@store_option
def bench(store_url: str) -> None:
    """Run the benchmark suite against the store."""
    not_yet("facta bench")


command = bench
