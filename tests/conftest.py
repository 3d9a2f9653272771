"""Shared fixtures: every EventStore backend, and the rule for services that are not running."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from facta import Engine, StoreUnavailable, open_store
from facta.store.postgres import PostgresEngine, PostgresEventStore
from facta.store.sqlite import SQLiteEventStore

REQUIRE_SERVICES = os.environ.get("FACTA_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    """Skip the test because a service is unreachable, or fail it when CI requires services."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (FACTA_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


StoreFactory = Callable[[], Awaitable[Engine]]


async def _memory(tmp_path: Path) -> Engine:
    return await open_store("memory://")


async def _sqlite(tmp_path: Path) -> Engine:
    return await open_store(f"sqlite:///{tmp_path / 'events.db'}")


POSTGRES_URL = os.environ.get("FACTA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


class ScratchPostgresStore(PostgresEngine):
    """A PostgreSQL engine in a fresh schema of its own, dropped again when it closes."""

    async def close(self) -> None:
        await super().close()
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            await connection.close()


async def open_scratch_postgres(**options: Any) -> ScratchPostgresStore:
    """A migrated store in a new schema ``test_<random>``, so that runs never collide."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        events = await PostgresEventStore.open(POSTGRES_URL, schema=schema, **options)
        return ScratchPostgresStore(f"{POSTGRES_URL}?schema={schema}", events)
    except StoreUnavailable as exc:
        service_missing(f"PostgreSQL is unreachable: {exc}")
        raise


async def _postgres(tmp_path: Path) -> Engine:
    return await open_scratch_postgres()


# Backends every conformance test runs against.
BACKENDS: dict[str, Callable[[Path], Awaitable[Engine]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    """An empty, open store of each backend."""
    opened = await BACKENDS[request.param](tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    opened = await SQLiteEventStore.open(str(tmp_path / "events.db"))
    yield opened
    await opened.close()
