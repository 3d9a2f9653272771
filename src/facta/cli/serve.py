"""``facta serve``: run an HTTP service (the bank example by default) under uvicorn."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import click

from facta.cli._common import BadSpec, console, load_object, opened_store, redact, run, store_option
from facta.cli._workers import Supervisor, listen, refuse_one_process_store
from facta.cli.console import aggregate_option, console_config
from facta.cli.projections import projection_option

DEFAULT_APP = "facta.examples.bank.service:create_app"


def load_factory(spec: str) -> Any:
    """The app factory named by ``MODULE:NAME`` (found from the working directory too)."""
    factory = load_object(spec, "--app")
    if not callable(factory):
        raise BadSpec("--app", spec, "it is not callable")
    return factory


async def _check_store(url: str) -> None:
    # Fail before binding the port: one clear line beats a traceback from the lifespan.
    async with opened_store(url, create=True):
        pass


@click.command()
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--app",
    "app_spec",
    default=DEFAULT_APP,
    show_default=True,
    envvar="FACTA_APP",
    metavar="MODULE:FACTORY",
    help="The factory of the Litestar app: called as FACTORY(store_url, projections=...).",
)
@click.option(
    "--no-projections",
    is_flag=True,
    help="Do not run the async projections in this process (run `facta projections run`).",
)
@click.option(
    "--no-console",
    is_flag=True,
    envvar="FACTA_NO_CONSOLE",
    help="Do not mount the web console at /console (it is on by default, behind the same"
    " API keys as the rest).",
)
@projection_option
@aggregate_option
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    envvar="FACTA_LOG_FORMAT",
    type=click.Choice(["text", "json"]),
    help="json: one JSON object per log line, with correlation, trace and span ids.",
)
@click.option(
    "--api-keys-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Require an API key on every request but /health and /ready: one key per line."
    " FACTA_API_KEYS (comma-separated) does the same. Off by default.",
)
@click.option(
    "--cors-origins",
    envvar="FACTA_CORS_ORIGINS",
    default=None,
    metavar="ORIGINS",
    help="Let pages from these origins call the API from a browser: comma-separated"
    " (https://dashboard.example,http://localhost:3000), or * for any. Off by default.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    envvar="FACTA_HEADER_TIMEOUT",
    metavar="SECONDS",
    help="Disconnect a client that has not sent a request's headers in this time.",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    envvar="FACTA_BODY_TIMEOUT",
    metavar="SECONDS",
    help="Disconnect a client that has not sent a request's body in this time after its headers.",
)
@click.option(
    "--read-store",
    "read_store_url",
    envvar="FACTA_READ_STORE",
    default=None,
    metavar="URL",
    help="Query the read models on this standby of the store's database (a PostgreSQL"
    " streaming replica); a query with a command's position waits for the standby to have"
    " replayed it.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    envvar="FACTA_WORKERS",
    help="Serve from this many processes sharing the port (a PostgreSQL store: SQLite and"
    " memory:// belong to one process).",
)
# A worker of `--workers N`: serve on the listening socket inherited as this descriptor.
@click.option("--fd", type=int, default=None, hidden=True)
def serve(
    store_url: str,
    host: str,
    port: int,
    app_spec: str,
    no_projections: bool,
    no_console: bool,
    projection_specs: tuple[str, ...],
    aggregate_specs: tuple[str, ...],
    log_level: str,
    log_format: str,
    api_keys_file: str | None,
    cors_origins: str | None,
    header_timeout: float,
    body_timeout: float,
    read_store_url: str | None,
    workers: int,
    fd: int | None,
) -> None:
    """Serve the HTTP API (the bank example by default) on the store."""
    refusal = refuse_one_process_store(store_url, workers)
    if refusal is not None:
        raise click.ClickException(refusal)
    factory = load_factory(app_spec)
    auth = api_keys_from(api_keys_file)
    run(_check_store, store_url)
    if workers > 1:
        options = {
            "--app": app_spec,
            "--log-level": log_level,
            "--log-format": log_format,
            "--header-timeout": str(header_timeout),
            "--body-timeout": str(body_timeout),
            "--api-keys-file": api_keys_file,
            "--cors-origins": cors_origins,
        }
        arguments = [a for o, v in options.items() if v is not None for a in (o, v)]
        arguments += ["--no-projections"] if no_projections else []
        arguments += ["--no-console"] if no_console else []
        arguments += [a for spec in projection_specs for a in ("--projection", spec)]
        arguments += [a for spec in aggregate_specs for a in ("--aggregate", spec)]
        try:
            sock = listen(host, port)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
        console.print(
            f"[bold]facta[/] serving [cyan]{app_spec}[/] on http://{host}:{port} from"
            f" {workers} processes  store {redact(store_url)}"
        )
        # The stores' URLs go by environment, not on the workers' command lines (ps).
        os.environ["FACTA_STORE"] = store_url
        if read_store_url:
            os.environ["FACTA_READ_STORE"] = read_store_url
        raise SystemExit(Supervisor(sock, workers, arguments).run())
    try:
        from facta.http import serve as serve_http
    except ImportError as exc:  # pragma: no cover - without the http extra
        raise click.ClickException(f"the HTTP service needs facta[http]: {exc}") from None
    # Keys and origins are handed over only when set, so factories without the parameters
    # keep working.
    extra: dict[str, Any] = {} if auth is None else {"api_keys": auth}
    if cors_origins:
        extra["cors_origins"] = _cors_origins(cors_origins)
    if read_store_url:
        extra["read_store"] = read_store_url
    app = factory(store_url, projections=not no_projections, **extra)
    console_url = None
    if not no_console:
        console_url = _mount_console(
            app, console_config(store_url, projection_specs, aggregate_specs)
        )
    if auth is not None:
        # Enforced here, outermost, whatever the factory did with the keys: it fails closed,
        # and the key is checked before routing (401, never 404 or 405, without one).
        app = auth.middleware(app)
    if fd is None:  # (a worker of --workers N leaves this to its supervisor)
        console.print(
            f"[bold]facta[/] serving [cyan]{app_spec}[/] on http://{host}:{port}"
            f"  store {redact(store_url)}  docs http://{host}:{port}/docs"
            + ("  [yellow]API keys required[/]" if auth is not None else "")
        )
        if console_url is not None:  # a line of its own: the one above is long enough
            console.print(f"console http://{host}:{port}{console_url}", soft_wrap=True)
    serve_http(
        app,
        host=host,
        port=port,
        log_level=log_level,
        json_logs=log_format == "json",
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        sock=None if fd is None else socket.socket(fileno=fd),
    )


def _mount_console(app: Any, config: Any) -> str | None:
    """Mount the console on ``app`` at /console; None (and a warning) for an app that is not
    a Litestar app, which it cannot be added to."""
    from litestar import Litestar

    from facta.console.app import CONSOLE, mount_console

    if not isinstance(app, Litestar):
        console.print("[yellow]the console is not mounted: the app is not a Litestar app[/]")
        return None
    mount_console(app, config)
    return CONSOLE


def api_keys_from(path: str | None) -> Any:
    """The ApiKeys from ``path`` or FACTA_API_KEYS, or None (authentication off)."""
    text = Path(path).read_text(encoding="utf-8") if path else os.environ.get("FACTA_API_KEYS")
    if not text:
        return None
    from facta.http.auth import ApiKeys

    try:
        return ApiKeys.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api-keys-file / FACTA_API_KEYS") from None


def _cors_origins(text: str) -> list[str]:
    from facta.http.app import parse_cors_origins

    try:
        return parse_cors_origins(text)
    except ValueError as exc:
        hint = "--cors-origins / FACTA_CORS_ORIGINS"
        raise click.BadParameter(str(exc), param_hint=hint) from None


command = serve
