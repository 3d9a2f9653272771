"""Shared fixtures: every EventStore backend, and the rule for services that are not running."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from facta import EventStore
from facta.store.memory import MemoryEventStore
from facta.store.sqlite import SQLiteEventStore

REQUIRE_SERVICES = os.environ.get("FACTA_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    """Skip the test because a service is unreachable, or fail it when CI requires services."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (FACTA_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


StoreFactory = Callable[[], Awaitable[EventStore]]


async def _memory(tmp_path: Path) -> EventStore:
    return MemoryEventStore()


async def _sqlite(tmp_path: Path) -> EventStore:
    return await SQLiteEventStore.open(str(tmp_path / "events.db"))


# Backends every conformance test runs against; PostgreSQL registers itself in its conftest.
BACKENDS: dict[str, Callable[[Path], Awaitable[EventStore]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


@pytest.fixture(params=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    """An empty, open store of each backend."""
    opened = await BACKENDS[request.param](tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    opened = await SQLiteEventStore.open(str(tmp_path / "events.db"))
    yield opened
    await opened.close()
