"""``facta projections status | run | rebuild NAME``: the read side's runner.

A stub until the projections package fills it in (the commands exist so that the CLI's shape
is stable and ``--help`` shows them).
"""

from __future__ import annotations

import click

from facta.cli._common import store_option
from facta.cli._stub import not_yet


@click.group()
def projections() -> None:
    """Projections: where each one is, run them, rebuild one."""


@projections.command()
@store_option
def status(store_url: str) -> None:
    """Show each projection's position, lag and state."""
    not_yet("facta projections status")


@projections.command("run")
@store_option
def run_projections(store_url: str) -> None:
    """Run the async projections until interrupted."""
    not_yet("facta projections run")


@projections.command()
@store_option
@click.argument("name")
def rebuild(store_url: str, name: str) -> None:
    """Rebuild projection NAME from the start of the log."""
    not_yet("facta projections rebuild")


command = projections
