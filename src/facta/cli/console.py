"""``facta console``: the web console alone, on a store (``facta serve`` mounts the same one
at ``/console`` beside the service's API). What it shares with ``serve``: the options that
give it the projections' code and the aggregates, and building its configuration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from facta.cli._common import console, load_object, redact, run, store_option
from facta.cli.projections import DEFAULT_PROJECTIONS, load_handler, projection_option

DEFAULT_AGGREGATES = (
    "facta.examples.bank.domain:Account",
    "facta.examples.bank.transfers:Transfer",
)
"""The bank example's aggregates: the console shows their states at any version."""

aggregate_option = click.option(
    "--aggregate",
    "aggregate_specs",
    multiple=True,
    default=DEFAULT_AGGREGATES,
    show_default=True,
    envvar="FACTA_AGGREGATES",
    metavar="MODULE:NAME",
    help="An aggregate (class or instance) whose state the console shows at any version;"
    " repeat it (the env var: space-separated).",
)


def console_config(store_url: str, projections: Sequence[str], aggregates: Sequence[str]) -> Any:
    """The ConsoleConfig of a store, the projections and policies named ``MODULE:CLASS``
    (their code: to rebuild one, to retry a parked event) and the aggregates."""
    from facta.console.service import ConsoleConfig

    loaded = []
    for spec in aggregates:
        found: Any = load_object(spec, "--aggregate")
        aggregate = found() if isinstance(found, type) else found
        if not (hasattr(aggregate, "name") and hasattr(aggregate, "evolve")):
            raise click.BadParameter(f"{spec!r} is not an aggregate", param_hint="--aggregate")
        loaded.append(aggregate)
    handlers = [load_handler(spec) for spec in projections]
    return ConsoleConfig(store_url, handlers, loaded)


async def _check(url: str) -> None:
    from facta.cli._common import opened_store

    async with opened_store(url):  # refuse a store that is not there, before binding
        pass


@click.command("console")
@store_option
@projection_option
@aggregate_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--api-keys-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Require an API key on the console's JSON endpoints: one key per line."
    " FACTA_API_KEYS (comma-separated) does the same.",
)
def console_command(
    store_url: str,
    projection_specs: tuple[str, ...],
    aggregate_specs: tuple[str, ...],
    host: str,
    port: int,
    api_keys_file: str | None,
) -> None:
    """Serve the web console alone on the store: the log, the read side, the relay."""
    from facta.cli.serve import api_keys_from
    from facta.console.app import create_console_app
    from facta.http import serve as serve_http

    config = console_config(store_url, projection_specs, aggregate_specs)
    run(_check, store_url)
    auth = api_keys_from(api_keys_file)
    app: Any = create_console_app(config)
    if auth is not None:
        app = auth.middleware(app)
    console.print(
        f"[bold]facta[/] console on http://{host}:{port}/console  store {redact(store_url)}"
        + ("  [yellow]API keys required[/]" if auth is not None else "")
    )
    serve_http(app, host=host, port=port)


command = console_command

__all__ = ["DEFAULT_AGGREGATES", "DEFAULT_PROJECTIONS", "aggregate_option", "console_config"]
