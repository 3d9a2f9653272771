"""``facta events verify``: check the log's integrity. A stub until its author fills it in."""

from __future__ import annotations

import click

from facta.cli._common import store_option
from facta.cli._stub import not_yet


@click.command()
@store_option
def verify(store_url: str) -> None:
    """Check that every stream's versions have no gaps and every event decodes."""
    not_yet("facta events verify")


command = verify
