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


# The files that take longest (seconds each in a full run on a slow day, from --durations),
# collected first: `make test` hands whole files to its four workers in collection order,
# so these start at once and the many short files fill in around them, instead of one of
# them starting last and running on alone (the last 5% of the tests took 6 of 11 minutes).
LONGEST_FIRST = (
    "tests/http/test_schemathesis.py",  # 188
    "tests/docs/test_tutorial.py",  # 185
    "tests/cli/test_package.py",  # 148
    "tests/relay/test_brokers.py",  # 141+
    "tests/reliability/test_service_crash.py",  # 67
    "tests/cli/test_store_errors.py",  # 56
    "tests/reliability/test_concurrent_startup_postgres.py",  # 51
    "tests/reliability/test_concurrent_startup.py",  # 43
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the tests so that the longest files come first (see LONGEST_FIRST); the
    others keep their order. No test depends on another's order."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    root = Path(__file__).resolve().parent.parent

    def key(item: pytest.Item) -> int:
        name = Path(str(item.path)).resolve().relative_to(root).as_posix()
        return rank.get(name, len(rank))

    items.sort(key=key)  # stable: within a rank, collection order


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
