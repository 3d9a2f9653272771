"""Storage: the contracts every engine implements, and ``open_store(url)`` to open one.

The layers above talk to the protocols of this package (the event store, read models,
relay checkpoints, and optional capabilities asked for by type), never to a concrete engine.
Engines register by URL scheme (:mod:`facta.store.registry`): facta's own are ``memory://``,
``sqlite://`` and ``postgresql://``, and other packages add theirs with an entry point.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from facta.archive.cold import ColdStore
from facta.personal.vault import master_key_from
from facta.store.base import EventStore
from facta.store.boundaries import (
    AppendCondition,
    BoundaryStore,
    Query,
    QueryItem,
    TaggedEvents,
)
from facta.store.engine import (
    Boundaries,
    Capability,
    CapabilityMissing,
    Engine,
    Erasure,
    HeldBack,
    HeldBackCounter,
    HookedAppends,
    InlineTransactions,
    PersonalData,
    Snapshots,
    SnapshotStore,
    Subscriber,
    Subscriptions,
)
from facta.store.erasure import Eraser, LogSize
from facta.store.registry import open_engine, register_engine

MASTER_KEY_VARIABLE = "FACTA_MASTER_KEY"
"""The environment variable a master key is read from when ``open_store`` is given none."""


async def open_store(
    url: str, *, create: bool = True, master_key: str | bytes | None = None, **options: Any
) -> Engine:
    """Open the engine at ``url``, creating its schema if needed.

    ``memory://`` — in process memory; ``sqlite:///relative/path.db`` or
    ``sqlite:////absolute/path.db`` — a SQLite file (query options: ``prefix``,
    ``synchronous``); ``postgresql://user@host:port/db`` — PostgreSQL (query options:
    ``schema``, ``prefix``, ``pool_size``, ``max_flushes``, ``visibility_wait``, ``notify``);
    on every engine, ``archive=DIRECTORY`` reads the events archived there through
    (:mod:`facta.lifecycle.archiving`);
    another scheme — the engine a package registered for it. Keyword ``options`` win over
    the URL's. Raises ValueError for a URL no engine takes, StoreSetupError for a PostgreSQL
    database or role that does not exist.

    With ``create=False`` nothing is created or migrated (what read-only tools want): a
    SQLite file or PostgreSQL schema that holds no facta store, or one with migrations
    missing, raises StoreSetupError.

    ``master_key`` (32 bytes, or their base64; default: the ``FACTA_MASTER_KEY`` environment
    variable, if set) wraps the keys of personal data on an engine with PersonalData (see
    :mod:`facta.personal`); ValueError for a malformed one.
    """
    if master_key is None:
        master_key = os.environ.get(MASTER_KEY_VARIABLE) or None
    key = master_key_from(master_key) if isinstance(master_key, str) else master_key
    url, archive = _archive_option(url, options)
    engine = await open_engine(url, create=create, **options)
    if archive is not None:
        engine.use_archive(ColdStore(archive))
    if key is not None and engine.vault is not None:
        try:
            engine.vault.use_master_key(key)
        except ValueError:
            await engine.close()
            raise
    return engine


def _archive_option(url: str, options: dict[str, Any]) -> tuple[str, str | None]:
    """``url`` without its ``archive`` query option, and that option (``options`` win):
    the archive is read through by every engine alike, so no engine sees the option."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    found = [value for name, value in query if name == "archive"]
    archive = options.pop("archive", None) or (found[-1] if found else None)
    if found:
        rest = urlencode([(name, value) for name, value in query if name != "archive"])
        # Not urlunsplit: it drops the empty authority of sqlite:////absolute/path.
        url = url.split("?", 1)[0] + (f"?{rest}" if rest else "")
    return url, None if archive is None else str(archive)


__all__ = [
    "AppendCondition",
    "Boundaries",
    "BoundaryStore",
    "Capability",
    "CapabilityMissing",
    "Engine",
    "Erasure",
    "Eraser",
    "EventStore",
    "HeldBack",
    "HeldBackCounter",
    "HookedAppends",
    "InlineTransactions",
    "LogSize",
    "PersonalData",
    "Query",
    "QueryItem",
    "SnapshotStore",
    "Snapshots",
    "Subscriber",
    "Subscriptions",
    "TaggedEvents",
    "open_store",
    "register_engine",
]
