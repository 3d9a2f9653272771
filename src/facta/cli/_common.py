"""What every command shares: the ``--store`` option, opening a store with one-line errors,
loading the user's ``MODULE:NAME``, naming the extra a command lacks, and the rich consoles."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from facta.errors import StoreSetupError, StoreUnavailable
from facta.store import open_store
from facta.store.engine import Engine
from facta.store.registry import opener_for

T = TypeVar("T")

DEFAULT_STORE = "sqlite:///facta.db"
"""The embedded default: a SQLite file in the working directory."""

OPEN_TIMEOUT = 10.0

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

store_option = click.option(
    "--store",
    "store_url",
    envvar="FACTA_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    show_envvar=True,
    metavar="URL",
    help="The event store: sqlite:///PATH, postgresql://USER@HOST:PORT/DB or memory://.",
)
"""The same ``--store URL`` option on every command (env ``FACTA_STORE``)."""


class StoreError(click.ClickException):
    """A store that cannot be used: printed as one line, exit code 1."""


def _unreachable() -> tuple[type[BaseException], ...]:
    # Backends raise StoreUnavailable; OSError covers a refused connection or missing directory.
    return (StoreUnavailable, OSError, TimeoutError, sqlite3.Error)


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def check_url(url: str) -> None:
    """Refuse a URL of a kind no engine takes (facta's own or one a package registered),
    before touching anything."""
    try:
        opener_for(url)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


EXTRAS = {
    "asyncpg": "postgres",
    "litestar": "http",
    "uvicorn": "http",
    "prometheus_client": "http",
    "aio_pika": "brokers",
    "nats": "brokers",
}
"""The optional dependencies by the extra of facta that installs them."""


def missing_extra(exc: ModuleNotFoundError) -> click.ClickException | None:
    """The one-line error naming the extra to install when ``exc`` is about one of
    :data:`EXTRAS`; None for any other module."""
    extra = EXTRAS.get((exc.name or "").partition(".")[0])
    if extra is None:
        return None
    return click.ClickException(
        f"this needs facta's {extra} extra ({exc.name} is not installed):"
        f" pip install 'facta[{extra}]'"
    )


@contextlib.asynccontextmanager
async def opened_store(url: str, *, create: bool = False) -> AsyncIterator[Engine]:
    """The store at ``url``, closed afterwards; StoreError (one line) if it cannot be opened.

    Without ``create`` (every command but ``migrate`` and ``serve``) nothing is created or
    migrated: a store that is not there, or not up to date, is refused with what to do.
    """
    check_url(url)
    try:
        async with asyncio.timeout(OPEN_TIMEOUT):
            store = await open_store(url, create=create)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    except StoreSetupError as exc:
        raise StoreError(str(exc)) from None
    except _unreachable() as exc:
        raise StoreError(f"cannot reach the event store at {redact(url)}: {_reason(exc)}") from None
    try:
        yield store
    except _unreachable() as exc:
        raise StoreError(f"the event store at {redact(url)} failed: {_reason(exc)}") from None
    finally:
        with contextlib.suppress(Exception):
            await store.close()


def progress_bar(label: str = "{task.description}") -> Progress:
    """The bar a long command shows while it works (nothing when output is not a terminal):
    ``label``, the bar, done of total, and the time taken."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def timestamp(unix_seconds: float) -> str:
    """A Unix time as ISO 8601 UTC, to the millisecond."""
    moment = datetime.fromtimestamp(unix_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run(work: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run async ``work`` to completion; Ctrl-C ends it quietly with exit code 130."""
    try:
        return asyncio.run(work(*args))  # type: ignore[arg-type]
    except KeyboardInterrupt:
        raise SystemExit(130) from None


class BadSpec(click.ClickException):
    """A ``MODULE:NAME`` option that names nothing usable: one line, exit code 2 (a usage
    error, as click gives for other bad options)."""

    exit_code = 2

    def __init__(self, option: str, spec: str, reason: str) -> None:
        super().__init__(f"{option}: cannot load {spec!r}: {reason}")


def load_object(spec: str, option: str) -> Any:
    """The object named ``MODULE:NAME`` (``NAME`` may be dotted), imported with the working
    directory first on the import path, as uvicorn and Flask do, so that a module beside
    the user is found. BadSpec (one line, naming ``option``) if it cannot be loaded; an
    exception raised by the module's own code propagates, with its traceback."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise BadSpec(option, spec, "it is not MODULE:NAME")
    here = os.getcwd()
    if sys.path[:1] != [here]:
        sys.path.insert(0, here)
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc)
        if extra is not None:
            raise extra from None
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise BadSpec(
                option, spec, f"{exc} (looked in {here} and the installed packages)"
            ) from None
        raise BadSpec(option, spec, str(exc)) from None  # something the module imports
    except ImportError as exc:
        raise BadSpec(option, spec, str(exc)) from None
    for part in name.split("."):
        if not hasattr(found, part):
            raise BadSpec(option, spec, f"module {module_name!r} has no {name!r}")
        found = getattr(found, part)
    return found
