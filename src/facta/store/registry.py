"""Engines by URL scheme: facta's own, those other packages declare, those registered here.

A package adds an engine by declaring an entry point in the group ``facta.engines``, named
after its URL scheme, pointing at its opener (an async callable taking the URL, ``create``
and the keyword options of :func:`facta.store.open_store`, returning an
:class:`~facta.store.engine.Engine`)::

    [project.entry-points."facta.engines"]
    mydb = "mypackage.engine:open_engine"

Then ``open_store("mydb://...")`` (and ``facta serve --store mydb://...``) opens it.
:func:`register_engine` does the same from code (tests, an application's own engine).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Any, Protocol
from urllib.parse import urlsplit

from facta.store.engine import Engine

ENTRY_POINT_GROUP = "facta.engines"


class Opener(Protocol):
    """What opens an engine: ``await opener(url, create=..., **options)``."""

    def __call__(self, url: str, *, create: bool = True, **options: Any) -> Awaitable[Engine]:
        """Open (with ``create``, creating and migrating its schema) the engine at ``url``."""
        ...


BUILT_IN = {
    "memory": "facta.store.memory:open_engine",
    "sqlite": "facta.store.sqlite:open_engine",
    "postgresql": "facta.store.postgres:open_engine",
    "postgres": "facta.store.postgres:open_engine",
}
"""facta's own engines, found without looking at installed entry points."""

_registered: dict[str, Opener] = {}


def register_engine(scheme: str, opener: Opener | Callable[..., Awaitable[Engine]]) -> None:
    """Open URLs of ``scheme`` with ``opener`` from now on (replacing any other)."""
    if not scheme or not scheme.replace("+", "").replace("-", "").isalnum():
        raise ValueError(f"{scheme!r} is not a URL scheme")
    _registered[scheme.lower()] = opener


def schemes() -> list[str]:
    """Every scheme an engine is known for: facta's, registered and installed ones."""
    installed = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(set(BUILT_IN) | set(_registered) | installed)


def opener_for(url: str) -> Opener:
    """The opener of ``url``'s scheme; ValueError naming the known schemes if none."""
    scheme = urlsplit(url).scheme.lower()
    found = _registered.get(scheme)
    if found is not None:
        return found
    target = BUILT_IN.get(scheme)
    if target is None:
        for entry in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
            loaded: Opener = entry.load()
            _registered[scheme] = loaded
            return loaded
        raise ValueError(
            f"unknown store URL {url[:80]!r}: use sqlite:///PATH, postgresql://HOST/DB,"
            f" memory:// or the scheme of an installed engine"
            f" ({', '.join(s + '://' for s in schemes())})"
        )
    module, _, name = target.partition(":")
    opener: Opener = getattr(importlib.import_module(module), name)
    return opener


async def open_engine(url: str, *, create: bool = True, **options: Any) -> Engine:
    """Open the engine ``url`` names (see :func:`facta.store.open_store`)."""
    return await opener_for(url)(url, create=create, **options)
