"""The ``facta`` command group: one module per command group, each exposing ``command``.

To add a group, write ``facta/cli/NAME.py`` with a click command or group named ``command``
and add NAME to :data:`COMMANDS`. Modules import their heavy dependencies (Litestar, drivers)
inside the command, so that ``facta --help`` stays fast.

Built on click (with rich for tables and progress bars): Litestar, our HTTP layer, already
depends on both, so the CLI adds no dependency, and click's groups are what lets each command
live in its own module. Both come with facta's ``cli`` extra; ``facta.cli.main`` says so when
they are missing.
"""

from __future__ import annotations

import importlib

import click

COMMANDS = (
    "serve",
    "console",
    "migrate",
    "streams",
    "events",
    "projections",
    "relay",
    "forget",
    "lifecycle",
    "bench",
)
"""The modules of ``facta.cli`` whose ``command`` is a top-level command or group."""

SUBCOMMANDS = {"events": ("verify",)}
"""Modules whose ``command`` joins a group defined in another module."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facta")
def cli() -> None:
    """facta: event sourcing and CQRS. Serve the API, look inside a store, run the read side."""


def _register() -> None:
    for name in COMMANDS:
        group = importlib.import_module(f"facta.cli.{name}").command
        for extra in SUBCOMMANDS.get(name, ()):
            assert isinstance(group, click.Group)
            group.add_command(importlib.import_module(f"facta.cli.{extra}").command)
        cli.add_command(group)


_register()


__all__ = ["COMMANDS", "SUBCOMMANDS", "cli"]
