"""``facta migrate``: create or upgrade the store's schema."""

from __future__ import annotations

import click

from facta.cli._common import console, opened_store, redact, run, store_option


async def _migrate(url: str) -> None:
    # Opening a store applies the migrations it lacks (safely from several processes at once).
    async with opened_store(url, create=True) as store:
        head = await store.head()
    console.print(f"[green]✓[/] schema of {redact(url)} is up to date (log head {head})")


@click.command()
@store_option
def migrate(store_url: str) -> None:
    """Create the event store's schema, or apply the migrations it lacks."""
    run(_migrate, store_url)


command = migrate
