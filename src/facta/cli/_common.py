"""What every command shares: the ``--store`` option, opening a store with one-line errors,
and the rich consoles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console

from facta.errors import StoreUnavailable
from facta.store import open_store
from facta.store.base import EventStore

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


def check_url(url: str, *, create: bool) -> None:
    """Refuse a URL that cannot work before touching anything; with ``create=False``, a SQLite
    URL must name an existing file (reading a typo would otherwise create an empty store)."""
    parts = urlsplit(url)
    if parts.scheme not in {"sqlite", "memory", "postgresql", "postgres"}:
        raise StoreError(
            f"unknown store URL {url!r}: use sqlite:///PATH, postgresql://HOST/DB or memory://"
        )
    if parts.scheme == "sqlite" and not create:
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if path and not os.path.exists(path):
            raise StoreError(f"no SQLite store at {path!r} (create one with `facta migrate`)")


@contextlib.asynccontextmanager
async def opened_store(url: str, *, create: bool = False) -> AsyncIterator[EventStore]:
    """The store at ``url``, closed afterwards; StoreError (one line) if it cannot be opened."""
    check_url(url, create=create)
    try:
        async with asyncio.timeout(OPEN_TIMEOUT):
            store = await open_store(url)
    except ValueError as exc:
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
