"""``facta relay run``: publish the log to a broker. A stub until the relay package fills it."""

from __future__ import annotations

import click

from facta.cli._common import store_option
from facta.cli._stub import not_yet


@click.group()
def relay() -> None:
    """The broker relay."""


@relay.command("run")
@store_option
def run_relay(store_url: str) -> None:
    """Publish the global log to the broker from the relay's checkpoint, until interrupted."""
    not_yet("facta relay run")


command = relay
